package serve

import (
	"fmt"
	"net"
)

// Listen binds addr for a Server and returns the address other instances
// forward queries to (streamfold.Config.Advertise): advertise when given,
// else the listener's, with an unspecified host (":8080") replaced by this
// machine's first non-loopback address — a container's or pod's address,
// reachable by its peers. Listen before streamfold.Open: the runtime
// advertises the address to its groups when it opens.
func Listen(addr, advertise string) (ln net.Listener, advertised string, err error) {
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("http listen: %w", err)
	}
	return ln, advertiseAddr(ln.Addr(), advertise), nil
}

func advertiseAddr(ln net.Addr, configured string) string {
	if configured != "" {
		return configured
	}
	host, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return ln.String()
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return ln.String()
	}
	return net.JoinHostPort(firstAddress(), port)
}

// firstAddress is the first IPv4 address of an interface that is up and not
// a loopback, or 127.0.0.1.
func firstAddress() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// isLoopback reports whether a listener accepts only local connections.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
