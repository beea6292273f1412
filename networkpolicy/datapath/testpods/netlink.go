package testpods

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// A minimal rtnetlink client: what a helper needs to build its side of the
// test network from inside its own namespace, without iproute2 (the VM test
// tier has only busybox).

const vethInfoPeer = 1 // VETH_INFO_PEER

type nlConn struct {
	fd  int
	seq uint32
}

func dialNetlink() (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &nlConn{fd: fd}, nil
}

func (c *nlConn) Close() error { return unix.Close(c.fd) }

// do sends one request and waits for its acknowledgement.
func (c *nlConn) do(typ, flags uint16, body []byte) error {
	c.seq++
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	msg = append(msg, body...)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], typ)
	ne.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(msg[8:], c.seq)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != c.seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if code := int32(ne.Uint32(m.Data[:4])); code != 0 {
				return unix.Errno(-code)
			}
			return nil
		}
	}
}

func nlAttr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], data)
	return b
}

func nlNested(typ uint16, children ...[]byte) []byte {
	var data []byte
	for _, c := range children {
		data = append(data, c...)
	}
	return nlAttr(typ, data)
}

func nlString(typ uint16, s string) []byte { return nlAttr(typ, append([]byte(s), 0)) }

func nlU32(typ uint16, v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return nlAttr(typ, b)
}

func ifinfo(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

func ifindex(name string) (int32, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return int32(ifc.Index), nil
}

// linkBridge creates a bridge.
func (c *nlConn) linkBridge(name string) error {
	body := append(ifinfo(0, 0, 0), nlString(unix.IFLA_IFNAME, name)...)
	body = append(body, nlNested(unix.IFLA_LINKINFO, nlString(unix.IFLA_INFO_KIND, "bridge"))...)
	return c.do(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body)
}

// linkVeth creates a veth pair whose peer goes into the network namespace
// of process pid.
func (c *nlConn) linkVeth(name, peer string, pid int) error {
	peerMsg := append(ifinfo(0, 0, 0), nlString(unix.IFLA_IFNAME, peer)...)
	peerMsg = append(peerMsg, nlU32(unix.IFLA_NET_NS_PID, uint32(pid))...)
	body := append(ifinfo(0, 0, 0), nlString(unix.IFLA_IFNAME, name)...)
	body = append(body, nlNested(unix.IFLA_LINKINFO,
		nlString(unix.IFLA_INFO_KIND, "veth"),
		nlNested(unix.IFLA_INFO_DATA, nlAttr(vethInfoPeer, peerMsg)))...)
	return c.do(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body)
}

// linkUp brings a link up, enslaving it to master when set.
func (c *nlConn) linkUp(name, master string) error {
	idx, err := ifindex(name)
	if err != nil {
		return err
	}
	body := ifinfo(idx, unix.IFF_UP, unix.IFF_UP)
	if master != "" {
		m, err := ifindex(master)
		if err != nil {
			return err
		}
		body = append(body, nlU32(unix.IFLA_MASTER, uint32(m))...)
	}
	return c.do(unix.RTM_NEWLINK, 0, body)
}

// addrAdd adds a host address (/32 or /128, without duplicate detection).
func (c *nlConn) addrAdd(name string, ip netip.Addr) error {
	idx, err := ifindex(name)
	if err != nil {
		return err
	}
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0], b[1] = unix.AF_INET, 32
	if ip.Is6() {
		b[0], b[1], b[2] = unix.AF_INET6, 128, unix.IFA_F_NODAD
	}
	binary.NativeEndian.PutUint32(b[4:], uint32(idx))
	a := ip.AsSlice()
	b = append(b, nlAttr(unix.IFA_LOCAL, a)...)
	b = append(b, nlAttr(unix.IFA_ADDRESS, a)...)
	return c.do(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, b)
}

// routeDefault routes every address of a family out of a link, on-link.
func (c *nlConn) routeDefault(name string, v6 bool) error {
	idx, err := ifindex(name)
	if err != nil {
		return err
	}
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	if v6 {
		b[0] = unix.AF_INET6
	}
	b[4], b[5], b[6], b[7] = unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_LINK, unix.RTN_UNICAST
	b = append(b, nlU32(unix.RTA_OIF, uint32(idx))...)
	return c.do(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, b)
}
