package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDashboardInfo_GivenSecrets_ThenOnlyWhetherTheyAreSetIsShown(t *testing.T) {
	cfg := testConfig("/var/lib/shop")
	cfg.AdminToken = "admin-secret"
	cfg.WriteToken = "write-secret"
	cfg.CursorKey = "cursor-secret"
	cfg.Kafka.SASLPassword = "sasl-secret"
	cfg.Database = "postgres://shop:db-secret@db:5432/shop"

	info := cfg.dashboardInfo()
	b, err := json.Marshal(info)
	require.NoError(t, err)
	for _, secret := range []string{"admin-secret", "write-secret", "cursor-secret", "sasl-secret", "db-secret"} {
		assert.NotContains(t, string(b), secret)
	}
	assert.Equal(t, "set (hidden)", info["admin-token"])
	assert.Equal(t, "set (hidden)", info["kafka-sasl-password"])
	assert.Equal(t, "postgres://shop:xxxxx@db:5432/shop", info["database"])
	assert.Equal(t, "/var/lib/shop", info["data-dir"])
	assert.Equal(t, 4, info["partitions"])

	cfg.WriteToken = ""
	assert.Equal(t, "not set", cfg.dashboardInfo()["write-token"])
}
