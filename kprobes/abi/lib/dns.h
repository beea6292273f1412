/* DNS answers parsed on the receive path, for toFQDNs rules (included by
 * netpol.bpf.c only).
 *
 * cgroup_skb/ingress runs before a datagram is queued on its socket, so the
 * addresses of an answer are in np_fqdn before the application can read
 * the answer: the first connect after a lookup never races the datapath.
 *
 * The parser trusts nothing of the packet. It copies at most DNS_BUF bytes
 * into per-CPU scratch memory and indexes it masked; every loop has a
 * constant bound (a name of at most 255 bytes, DNS_MAX_ANSWERS records,
 * DNS_MAX_LABELS labels per skipped name); compression pointers are never
 * followed (the question must be uncompressed; owner names of records are
 * skipped, which a pointer ends), so a loop of pointers cannot loop.
 * A malformed answer is counted and learns nothing: the connect to its
 * addresses is decided as if there had been no lookup.
 *
 * The question name is walked through the name automaton of the policies
 * (networkpolicy.NameTable, dns.Automaton), one array lookup per
 * character; the state it ends in gives the identity of the set of
 * patterns the name matches. Every A and AAAA record of the answer section
 * (CNAME chains included: their targets' addresses answer the question) is
 * recorded under that identity for the receiving pod's local identity,
 * until its TTL (at least np_cfg.dns_min_ttl) runs out. */
#ifndef VIGIL_DNS_H
#define VIGIL_DNS_H

#define DNS_BUF 4096
#define DNS_MASK (DNS_BUF - 1)
#define DNS_SYMBOLS 40 /* dns.NumSymbols */
#define DNS_SYM_DOT 38
#define DNS_SYM_OTHER 39
#define DNS_MAX_STATES 4096 /* dns.MaxStates */
#define DNS_MAX_NAME 255    /* wire form of a name */
#define DNS_MAX_LABELS 128
#define DNS_MAX_ANSWERS 256 /* A records of a full 4096-byte answer */
#define FQDN_SLOTS 4
#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1

/* np_fqdn: what a local identity learned. An address may have been learned
 * for several names of different identities; each slot holds one. */
struct fqdn_key {
	__u32 local;
	__u8 addr[16];
};

struct fqdn_slot {
	__u64 expires_ns; /* bpf_ktime_get_ns() clock; 0: empty */
	__u32 identity;
	__u32 pad;
};

struct fqdn_value {
	struct fqdn_slot slot[FQDN_SLOTS];
};

/* The parser's memory: the message, and the loop state of the answer
 * section (kept here, not in registers, so the verifier does not follow
 * every count through every iteration). */
struct dns_scratch {
	__u8 buf[DNS_BUF];
	__u32 off;
	__u32 learned;
	/* The walk of the question: automaton half and state, bytes left in
	 * the label, bytes of the name so far. */
	__u32 half;
	__u32 state;
	__u32 left;
	__u32 wire;
};

/* The automaton is held twice: user space writes the half np_dns_active
 * does not name, then names it, so a name is never walked through a
 * half-written automaton. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 2 * DNS_MAX_STATES * DNS_SYMBOLS);
} np_dns_next SEC(".maps");

/* The identity of the state a name ends in (0: no pattern matches). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 2 * DNS_MAX_STATES);
} np_dns_accept SEC(".maps");

/* The rules.dns lists (mask) with a pattern matching the names ending in
 * each state. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 2 * DNS_MAX_STATES);
} np_dns_groups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} np_dns_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fqdn_key);
	__type(value, struct fqdn_value);
	__uint(max_entries, 65536); /* resized by the loader */
} np_fqdn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct dns_scratch);
	__uint(max_entries, 1);
} np_dns_scratch SEC(".maps");

/* np_dns_tcp_len: TCP sockets (by cookie) that received the two-byte
 * length of an answer alone in a segment, with that length: the next
 * segment of that many bytes is the message. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, __u32);
	__uint(max_entries, 4096);
} np_dns_tcp_len SEC(".maps");

/* dns_symbol is dns.Symbol. */
static __always_inline __u32 dns_symbol(__u8 c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '0' && c <= '9')
		return 26 + (c - '0');
	if (c == '-')
		return 36;
	if (c == '_')
		return 37;
	if (c == '.')
		return DNS_SYM_DOT;
	return DNS_SYM_OTHER;
}

static __always_inline __u32 dns_step(__u32 half, __u32 state, __u32 sym)
{
	if (state == 0 || state >= DNS_MAX_STATES)
		return 0;
	__u32 k = half * (DNS_MAX_STATES * DNS_SYMBOLS) + state * DNS_SYMBOLS + sym;
	__u32 *next = bpf_map_lookup_elem(&np_dns_next, &k);
	return next ? *next : 0;
}

/* dns_name_step reads one byte of the question name at s->off. It returns
 * 0 to go on, 1 at the end of the name, a negative value for a malformed
 * name. */
__noinline long dns_name_step(__u32 len)
{
	__u32 zero = 0;
	struct dns_scratch *s = bpf_map_lookup_elem(&np_dns_scratch, &zero);
	if (!s)
		return -1;
	__u32 off = s->off;
	if (off >= len)
		return -1;
	__u8 c = s->buf[off & DNS_MASK];
	s->off = off + 1;
	if (s->left > 0) {
		s->state = dns_step(s->half, s->state, dns_symbol(c));
		s->left--;
		return 0;
	}
	if (c == 0)
		return 1;
	if (c & 0xc0)
		return -1; /* a pointer (or a reserved label type) in the question */
	__u32 wire = s->wire + c + 1;
	if (wire > DNS_MAX_NAME - 1)
		return -1;
	if (s->wire > 0)
		s->state = dns_step(s->half, s->state, DNS_SYM_DOT);
	s->wire = wire;
	s->left = c;
	return 0;
}

/* dns_question walks the question name at offset 12 through the automaton.
 * It returns the key of the state it ends in (in np_dns_accept and
 * np_dns_groups; 0: no pattern matches) in the low 32 bits and the offset
 * after the name in the high bits, or a negative value for a malformed
 * name. */
static __always_inline long dns_question(struct dns_scratch *s, __u32 len)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&np_dns_active, &zero);
	s->half = active && *active ? 1 : 0;
	s->off = 12;
	s->state = 1;
	s->left = 0;
	s->wire = 0;
	for (int i = 0; i < DNS_MAX_NAME; i++) {
		long r = dns_name_step(len);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		__u32 state = s->state;
		if (s->wire == 0 || state == 0 || state >= DNS_MAX_STATES)
			return (long)s->off << 32; /* the root name, or no match */
		return ((long)s->off << 32) | (s->half * DNS_MAX_STATES + state);
	}
	return -1;
}

/* dns_skip_name returns the offset after a name of a record (which a
 * pointer ends, without following it), or a negative value. */
__noinline long dns_skip_name(__u32 off, __u32 len)
{
	__u32 zero = 0;
	struct dns_scratch *s = bpf_map_lookup_elem(&np_dns_scratch, &zero);
	if (!s)
		return -1;
	for (int i = 0; i < DNS_MAX_LABELS; i++) {
		if (off >= len)
			return -1;
		__u8 c = s->buf[off & DNS_MASK];
		if (c == 0)
			return off + 1;
		if ((c & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : -1;
		if (c & 0xc0)
			return -1;
		off += c + 1;
	}
	return -1;
}

/* fqdn_learn records one address of an answer for a local identity. */
__noinline int fqdn_learn(__u32 local, __u32 identity, __u32 ttl, __u32 off, __u32 v6)
{
	__u32 zero = 0;
	struct dns_scratch *s = bpf_map_lookup_elem(&np_dns_scratch, &zero);
	if (!s)
		return 0;
	struct fqdn_key k = { .local = local };
	if (v6) {
		for (int i = 0; i < 16; i++)
			k.addr[i] = s->buf[(off + i) & DNS_MASK];
	} else {
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		for (int i = 0; i < 4; i++)
			k.addr[12 + i] = s->buf[(off + i) & DNS_MASK];
	}
	if (ttl < np_cfg.dns_min_ttl)
		ttl = np_cfg.dns_min_ttl;
	__u64 now = bpf_ktime_get_ns();
	__u64 expires = now + (__u64)ttl * 1000000000ULL;
	struct fqdn_value *v = bpf_map_lookup_elem(&np_fqdn, &k);
	if (!v) {
		struct fqdn_value nv = {};
		nv.slot[0].expires_ns = expires;
		nv.slot[0].identity = identity;
		long err = bpf_map_update_elem(&np_fqdn, &k, &nv, BPF_NOEXIST);
		if (err == 0)
			return 1;
		v = bpf_map_lookup_elem(&np_fqdn, &k); /* another CPU made it */
		if (!v) {
			stat_inc(NP_STAT_DNS_MAP_FULL);
			return 0;
		}
	}
	/* The slot of this identity, else an empty or expired one, else the
	 * one that expires first. */
	int pick = -1, soonest = 0;
	for (int i = 0; i < FQDN_SLOTS; i++) {
		if (v->slot[i].identity == identity && v->slot[i].expires_ns != 0) {
			pick = i;
			break;
		}
	}
	if (pick < 0) {
		for (int i = 0; i < FQDN_SLOTS; i++) {
			if (v->slot[i].expires_ns <= now) {
				pick = i;
				break;
			}
			if (v->slot[i].expires_ns < v->slot[soonest].expires_ns)
				soonest = i;
		}
	}
	if (pick < 0) {
		pick = soonest;
		stat_inc(NP_STAT_DNS_SLOT_EVICTED);
	}
	if (pick < 0 || pick >= FQDN_SLOTS)
		return 0;
	if (v->slot[pick].identity == identity && v->slot[pick].expires_ns > expires)
		return 1; /* a longer TTL already */
	v->slot[pick].identity = identity;
	v->slot[pick].expires_ns = expires;
	return 1;
}

/* dns_record reads the record at s->off and moves past it: an A or AAAA
 * record of class IN is learned unless the answer already gave
 * np_cfg.dns_max_ips addresses. It returns 0, or a negative value for a
 * malformed record. */
__noinline long dns_record(__u32 len, __u32 local, __u32 identity)
{
	__u32 zero = 0;
	struct dns_scratch *s = bpf_map_lookup_elem(&np_dns_scratch, &zero);
	if (!s)
		return -1;
	__u32 off = s->off;
	long n = dns_skip_name(off, len);
	if (n < 0 || (__u32)n + 10 > len)
		return -1;
	off = (__u32)n;
	__u16 type = (__u16)s->buf[off & DNS_MASK] << 8 | s->buf[(off + 1) & DNS_MASK];
	__u16 class = (__u16)s->buf[(off + 2) & DNS_MASK] << 8 | s->buf[(off + 3) & DNS_MASK];
	__u32 ttl = (__u32)s->buf[(off + 4) & DNS_MASK] << 24 | (__u32)s->buf[(off + 5) & DNS_MASK] << 16 |
		    (__u32)s->buf[(off + 6) & DNS_MASK] << 8 | s->buf[(off + 7) & DNS_MASK];
	__u16 rdlen = (__u16)s->buf[(off + 8) & DNS_MASK] << 8 | s->buf[(off + 9) & DNS_MASK];
	off += 10;
	if (off + rdlen > len)
		return -1;
	if (ttl > 0x7fffffff)
		ttl = 0; /* RFC 2181 8: a TTL with the top bit set is zero */
	if (class == DNS_CLASS_IN && ((type == DNS_TYPE_A && rdlen == 4) || (type == DNS_TYPE_AAAA && rdlen == 16))) {
		__u32 cap = np_cfg.dns_max_ips;
		if (cap && s->learned >= cap) {
			stat_inc(NP_STAT_DNS_CAPPED);
		} else if (fqdn_learn(local, identity, ttl, off, type == DNS_TYPE_AAAA)) {
			s->learned++;
			stat_inc(NP_STAT_DNS_LEARNED);
		}
	}
	s->off = off + rdlen;
	return 0;
}

/* dns_load copies len bytes (12 to DNS_BUF) of the packet from start into
 * the scratch buffer. The length reaches the helper through arithmetic
 * that bounds it to [1, DNS_BUF] on every verifier (6.1 and 6.12 lose
 * the bounds of comparisons through clang's 32-bit copies). */
static __always_inline int dns_load(struct __sk_buff *skb, __u32 start, __u32 len, struct dns_scratch *s)
{
	__u64 n = len;
	asm volatile("" : "+r"(n));
	n = ((n - 1) & DNS_MASK) + 1;
	return bpf_skb_load_bytes(skb, start, s->buf, n);
}

/* dns_answer parses the DNS message of len bytes at start of a packet
 * that a socket of local identity local receives, and learns its
 * addresses. */
static __always_inline void dns_answer(struct __sk_buff *skb, __u32 start, __u32 len, __u32 local)
{
	__u32 zero = 0;
	struct dns_scratch *s = bpf_map_lookup_elem(&np_dns_scratch, &zero);
	if (!s)
		return;
	if (len < 12) {
		stat_inc(NP_STAT_DNS_MALFORMED);
		return;
	}
	if (len > DNS_BUF) {
		stat_inc(NP_STAT_DNS_TRUNCATED);
		len = DNS_BUF;
	}
	if (dns_load(skb, start, len, s))
		return;
	stat_inc(NP_STAT_DNS_ANSWERS);
	__u8 flags0 = s->buf[2], flags1 = s->buf[3];
	__u16 qd = (__u16)s->buf[4] << 8 | s->buf[5];
	__u16 an = (__u16)s->buf[6] << 8 | s->buf[7];
	/* A response (QR), standard query, NOERROR, one question. */
	if (!(flags0 & 0x80) || (flags0 & 0x78) || (flags1 & 0x0f) || qd != 1)
		return;
	long q = dns_question(s, len);
	if (q < 0) {
		stat_inc(NP_STAT_DNS_MALFORMED);
		return;
	}
	__u32 ak = (__u32)q;
	__u32 *id = ak ? bpf_map_lookup_elem(&np_dns_accept, &ak) : NULL;
	__u32 identity = id ? *id : 0;
	if (identity == 0)
		return; /* no toFQDNs pattern matches the name */
	s->off = (__u32)(q >> 32) + 4; /* QTYPE, QCLASS */
	s->learned = 0;
	for (int i = 0; i < DNS_MAX_ANSWERS; i++) {
		if (i >= an)
			break;
		if (dns_record(len, local, identity) < 0) {
			stat_inc(NP_STAT_DNS_MALFORMED);
			return;
		}
	}
}

/* dns_udp_answer parses the answer in a UDP datagram (transport header at
 * l4off). */
static __always_inline void dns_udp_answer(struct __sk_buff *skb, __u32 l4off, __u32 local)
{
	__u32 start = l4off + 8;
	if (skb->len > start)
		dns_answer(skb, start, skb->len - start, local);
}

/* dns_tcp_answer parses the answer in a TCP segment of an established
 * connection to a DNS server: a segment that holds a whole message (its
 * two-byte length and all of it), or, after a segment that held only the
 * length, the next segment when it is exactly that long (servers that
 * write the length and the message apart). A message split otherwise is
 * counted and not learned. */
static __always_inline void dns_tcp_answer(struct __sk_buff *skb, __u32 l4off, __u32 local)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->state != BPF_TCP_ESTABLISHED)
		return;
	__u8 doff = 0;
	if (bpf_skb_load_bytes(skb, l4off + 12, &doff, 1))
		return;
	__u32 start = l4off + (doff >> 4) * 4;
	if (skb->len <= start)
		return; /* no payload: an ACK */
	__u32 payload = skb->len - start;
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u32 *want = bpf_map_lookup_elem(&np_dns_tcp_len, &cookie);
	if (want) {
		__u32 mlen = *want;
		bpf_map_delete_elem(&np_dns_tcp_len, &cookie);
		if (payload == mlen) {
			dns_answer(skb, start, mlen, local);
			return;
		}
		stat_inc(NP_STAT_DNS_SPLIT);
		return;
	}
	if (payload < 2)
		return;
	__u8 pfx[2];
	if (bpf_skb_load_bytes(skb, start, pfx, 2))
		return;
	__u32 mlen = (__u32)pfx[0] << 8 | pfx[1];
	if (payload == 2) {
		if (mlen)
			bpf_map_update_elem(&np_dns_tcp_len, &cookie, &mlen, BPF_ANY);
		return;
	}
	if (payload - 2 < mlen) {
		stat_inc(NP_STAT_DNS_SPLIT);
		return;
	}
	dns_answer(skb, start + 2, mlen, local);
}

/* fqdn_allows reports whether an address the local identity learned for a
 * name lets egress through: some unexpired slot's identity is allowed by a
 * rule (networkpolicy.Tables.LookupNames). */
static __always_inline int fqdn_allows(__u32 local, struct np_flow *f, __u16 port)
{
	struct fqdn_key k = { .local = local };
	__builtin_memcpy(k.addr, f->remote, 16);
	struct fqdn_value *v = bpf_map_lookup_elem(&np_fqdn, &k);
	if (!v)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	for (int i = 0; i < FQDN_SLOTS; i++) {
		if (v->slot[i].expires_ns <= now)
			continue;
		struct policy_value *pv = policy_lookup(local, NP_EGRESS, v->slot[i].identity, f->protocol, port);
		if (pv && pv->verdict == NP_ALLOW && pv->reason == NP_REASON_ALLOWED_BY_RULE)
			return 1;
	}
	return 0;
}

/* dns_query_allowed decides a DNS query a pod sends (UDP to port 53):
 * when the rules that open the port to the server restrict names
 * (rules.dns), the question name must match one of their lists; a query
 * it cannot read is refused too. A refused query is dropped (the sender
 * gets EPERM) and reported. */
static __always_inline int dns_query_allowed(struct __sk_buff *skb, struct np_flow *f)
{
	__u64 cgid = bpf_skb_cgroup_id(skb);
	__u32 *localp = bpf_map_lookup_elem(&np_cgroups, &cgid);
	if (!localp)
		return 1;
	__u32 local = *localp;
	__u32 remote = remote_identity(f);
	struct policy_value *pv = policy_lookup(local, NP_EGRESS, remote, f->protocol, f->remote_port);
	if (!pv || pv->verdict != NP_ALLOW || pv->dns_groups == 0)
		return 1;
	struct policy_value v = *pv;
	stat_inc(NP_STAT_DNS_QUERIES);
	__u32 zero = 0;
	struct dns_scratch *s = bpf_map_lookup_elem(&np_dns_scratch, &zero);
	if (!s)
		return 1;
	int ok = 0;
	__u32 start = f->l4off + 8;
	if (skb->len >= start + 12) {
		__u32 n = skb->len - start;
		if (n > DNS_BUF)
			n = DNS_BUF;
		if (dns_load(skb, start, n, s) == 0) {
			__u16 qd = (__u16)s->buf[4] << 8 | s->buf[5];
			/* A standard query with one question. */
			if (!(s->buf[2] & 0x80) && !(s->buf[2] & 0x78) && qd == 1) {
				long q = dns_question(s, (__u32)n);
				__u32 ak = q > 0 ? (__u32)q : 0;
				__u32 *groups = ak ? bpf_map_lookup_elem(&np_dns_groups, &ak) : NULL;
				ok = groups && (*groups & v.dns_groups);
			}
		}
	}
	if (ok)
		return 1;
	v.verdict = NP_DENY;
	v.reason = NP_REASON_DNS_REFUSED;
	report(f, cgid, local, remote, &v, 0);
	stat_inc(NP_STAT_DNS_REFUSED);
	stat_inc(NP_STAT_DENIED);
	return 0;
}

#endif
