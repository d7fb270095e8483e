package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/cli"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
)

func TestRoles_GivenGroupsFlag_ThenUnknownNamesAreRejectedWithTheValidOnes(t *testing.T) {
	_, err := parseRunFlags([]string{"--brokers", "k:9092", "--groups", "customers,shipping"}, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown group "shipping"`)
	for _, g := range []string{shop.CustomersGroup, shop.CartsGroup, shop.CartsGroup + "-relay", shop.ProductsGroup} {
		assert.Contains(t, err.Error(), g, "the error lists the valid groups")
	}

	for flags, want := range map[string][]string{
		"all":                  nil,
		"none":                 {},
		"":                     {},
		"customers, carts ,":   {"customers", "carts"},
		"customers,customers,": {"customers"},
	} {
		cfg, err := parseRunFlags([]string{"--brokers", "k:9092", "--groups", flags}, io.Discard)
		require.NoError(t, err, flags)
		assert.Equal(t, want, cfg.Groups, flags)
	}

	cfg, err := parseRunFlags([]string{"--brokers", "k:9092", "--no-query", "--standby", "--advertise-http", "shop-1:8080"}, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.NoQuery)
	assert.True(t, cfg.Standby)
	assert.Equal(t, "shop-1:8080", cfg.AdvertiseHTTP)
	cfg, err = parseRunFlags([]string{"--brokers", "k:9092", "--query=false"}, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.NoQuery)

	_, err = parseRunFlags([]string{"--brokers", "k:9092", "--groups", "none", "--no-query"}, io.Discard)
	assert.ErrorContains(t, err, "nothing to do")
	_, err = parseRunFlags([]string{"--advertise-http", "nohost"}, io.Discard)
	assert.ErrorContains(t, err, "--advertise-http")
	_, err = parseRunFlags([]string{"--no-such-flag"}, io.Discard)
	assert.True(t, errors.Is(err, cli.ErrUsage))
}

func TestRoles_GivenAQueryOnlyAndAProcessorOnlyInstance_ThenReplicasServeEveryKeyAndUnreachableOwnersAreNamed(t *testing.T) {
	cluster := startCluster(t)
	p := startShop(t, memberConfig(t, cluster.Addrs()))
	qcfg := memberConfig(t, cluster.Addrs())
	qcfg.Groups = []string{}
	q := startShop(t, qcfg)

	// The query-only instance keeps each table in a replica directory of its own.
	_, err := os.Stat(filepath.Join(qcfg.StateDir(), "replicas", shop.CustomersTable.Name))
	require.NoError(t, err, "no replica directory")
	_, err = os.Stat(filepath.Join(qcfg.StateDir(), shop.CustomersGroup))
	assert.NoError(t, err, "an unused group directory is harmless")

	// Writes through the query-only instance; reads served from its replicas.
	ids := registerAll(t, q.base, "q", 12)
	allReadable(t, []string{q.base, p.base}, ids)
	for _, id := range ids {
		assert.Equal(t, q.app.Advertised(), mustGet(t, q.base, "/customers/"+id).servedBy, "a replica answers locally")
	}
	addProducts(t, p, "apple")
	status, rep := postCommand(t, q.base, "qcart", "qcmd-1", addItem("apple", 2))
	require.Equal(t, http.StatusOK, status, rep.Detail)
	var cart shop.Cart
	require.Equal(t, http.StatusOK, httpGetJSON(t, q.base+"/carts/qcart?minVersion=2", &cart))
	assert.Equal(t, int64(2), cart.Version)

	// A processor-only instance joins: it serves health but no queries, and
	// advertises no address; a key it owns cannot be forwarded to it.
	ncfg := memberConfig(t, cluster.Addrs())
	ncfg.NoQuery = true
	n := startShop(t, ncfg)
	assert.Empty(t, n.app.Advertised())
	assert.Equal(t, http.StatusNotFound, mustGet(t, n.base, "/customers/"+ids[0]).status)
	assert.Equal(t, http.StatusOK, mustGet(t, n.base, "/healthz").status)
	awaitStable(t, p.app.Runtime(), 2)

	var owned string
	for _, id := range ids {
		pl, err := p.app.Runtime().Place(shop.CustomersTable.Name, id)
		require.NoError(t, err)
		if pl.OwnerKnown && pl.Owner.Query == "" {
			owned = id
			break
		}
	}
	require.NotEmpty(t, owned, "the processor-only instance owns none of the keys")
	ans := mustGet(t, p.base, "/customers/"+owned)
	assert.Equal(t, http.StatusServiceUnavailable, ans.status, string(ans.body))
	assert.Equal(t, "1", ans.header.Get("Retry-After"))
	var prob queryapi.Problem
	require.NoError(t, json.Unmarshal(ans.body, &prob))
	assert.Contains(t, prob.Detail, "serves no queries")
	// The query-only instance still answers it from its replica.
	assert.Equal(t, http.StatusOK, mustGet(t, q.base, "/customers/"+owned).status)
}

func TestStandby_GivenHotStandbys_ThenEveryInstanceHoldsEveryPartitionAndAStaleReadAnswersThroughAFailover(t *testing.T) {
	cluster := startCluster(t)
	acfg, bcfg := memberConfig(t, cluster.Addrs()), memberConfig(t, cluster.Addrs())
	acfg.Standby, bcfg.Standby = true, true
	a := startShop(t, acfg)
	b := startShop(t, bcfg)
	awaitStable(t, a.app.Runtime(), 2)

	ids := registerAll(t, a.base, "s", 16)
	allReadable(t, []string{a.base, b.base}, ids)

	// Each instance holds a restored copy of every partition, owned or not.
	mine := 0
	for _, id := range ids {
		pl, err := a.app.Runtime().Place(shop.CustomersTable.Name, id)
		require.NoError(t, err)
		assert.True(t, pl.Copy && pl.Restored, "a holds no restored copy of %s (partition %d)", id, pl.Partition)
		if pl.Local {
			mine++
		}
	}
	require.Less(t, mine, len(ids), "a owns every key: nothing to fail over")

	// When b stops, a stale read answers every key at once, from a's copies
	// while the group moves b's partitions.
	b.stop()
	for _, id := range ids {
		ans := mustGet(t, a.base, "/customers/"+id+"?stale=ok")
		require.Equal(t, http.StatusOK, ans.status, "%s: %s", id, ans.body)
		var c shop.Customer
		require.NoError(t, json.Unmarshal(ans.body, &c))
		assert.Equal(t, "name-"+id, c.Name)
		if ans.header.Get(serve.HeaderStale) == "true" {
			assert.NotEmpty(t, ans.header.Get(serve.HeaderLagRecords))
		}
	}
	allReadable(t, []string{a.base}, ids)
}
