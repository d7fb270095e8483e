package serve

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListen_GivenAddresses_ThenTheAdvertisedOneIsReachableByPeers(t *testing.T) {
	ln, adv, err := Listen("127.0.0.1:0", "")
	require.NoError(t, err)
	defer ln.Close()
	assert.Equal(t, ln.Addr().String(), adv, "a named host is advertised as it is")
	assert.True(t, isLoopback(ln.Addr()))

	ln2, adv, err := Listen("127.0.0.1:0", "shop-1:8080")
	require.NoError(t, err)
	defer ln2.Close()
	assert.Equal(t, "shop-1:8080", adv, "the configured address wins")

	_, port, _ := net.SplitHostPort(ln.Addr().String())
	wild := &net.TCPAddr{IP: net.IPv4zero, Port: ln.Addr().(*net.TCPAddr).Port}
	host, p, err := net.SplitHostPort(advertiseAddr(wild, ""))
	require.NoError(t, err)
	assert.Equal(t, port, p)
	assert.False(t, net.ParseIP(host).IsUnspecified(), "an unspecified host is replaced by an interface's address")
	assert.False(t, isLoopback(wild))

	_, _, err = Listen("127.0.0.1:-1", "")
	assert.ErrorContains(t, err, "http listen")
}
