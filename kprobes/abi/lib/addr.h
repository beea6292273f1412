/* Socket addresses as 16 bytes, IPv4 v4-mapped (::ffff:a.b.c.d), the form
 * every record and map key of Vigil uses for an address of either family.
 * Shared by the flow and the network-policy programs; it defines no map. */
#ifndef VIGIL_ADDR_H
#define VIGIL_ADDR_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* addr_v4mapped writes an IPv4 address (network byte order). */
static __always_inline void addr_v4mapped(__u8 dst[16], __u32 addr_be)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr_be, 4);
}

/* addr_of_words copies an IPv6 address given as four 32-bit words: the
 * context fields of socket programs must be read a word at a time. */
static __always_inline void addr_of_words(__u8 dst[16], __u32 w0, __u32 w1, __u32 w2, __u32 w3)
{
	__u32 a[4] = {w0, w1, w2, w3};

	__builtin_memcpy(dst, a, 16);
}

/* sock_addr_peer writes the address a connect or sendmsg goes to. */
static __always_inline void sock_addr_peer(const struct bpf_sock_addr *ctx, int v6, __u8 dst[16])
{
	if (v6)
		addr_of_words(dst, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]);
	else
		addr_v4mapped(dst, ctx->user_ip4);
}

/* bpf_sock_local writes a socket's own address. */
static __always_inline void bpf_sock_local(const struct bpf_sock *sk, int v6, __u8 dst[16])
{
	if (v6)
		addr_of_words(dst, sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3]);
	else
		addr_v4mapped(dst, sk->src_ip4);
}

#endif
