// Package netkey says which client addresses count as one for the
// connection limits of every listener (smtpd, imapd). It imports nothing
// of pushmail's.
package netkey

import "net"

// Of returns the limits' key for ip: the IPv4 address (also when
// IPv4-mapped), or the /64 an IPv6 address is in. A /64 is the smallest
// network RFC 4291 §2.5.4 and RFC 6177 have a site given: one host can use
// any of its 2^64 addresses, so counting them one by one would count
// nothing.
func Of(ip net.IP) string {
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
