package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// composeFile is the repository's docker-compose.yml.
var composeFile = filepath.Join("..", "..", "docker-compose.yml")

// commandLine is a service's command as one line of JSON.
var commandLine = regexp.MustCompile(`(?m)^\s+command:\s*(\[.*\])\s*$`)

func TestCompose_GivenTheComposeFile_ThenEveryShopCommandParsesWithTheBinarysFlags(t *testing.T) {
	b, err := os.ReadFile(composeFile)
	require.NoError(t, err)
	matches := commandLine.FindAllSubmatch(b, -1)
	require.Len(t, matches, 2, "expected the processors' and the query instance's commands")
	var queryOnly, processors int
	for _, m := range matches {
		var args []string
		require.NoError(t, json.Unmarshal(m[1], &args), "command %s is not a JSON list", m[1])
		require.NotEmpty(t, args)
		require.Equal(t, "run", args[0], "the image's entrypoint is the shop binary; commands start with the subcommand")
		cfg, err := parseRunFlags(args[1:], io.Discard)
		require.NoError(t, err, "command %s", m[1])
		assert.False(t, cfg.Embedded(), "a compose instance must run against Kafka: %s", m[1])
		assert.Equal(t, "/var/lib/shop", cfg.DataDir, "the image's volume")
		assert.True(t, strings.HasPrefix(cfg.Database, "postgres://shop:shop@postgres:5432/"),
			"every instance shares the compose file's PostgreSQL (payments, outbox, read models): %s", m[1])
		if cfg.Groups != nil && len(cfg.Groups) == 0 {
			queryOnly++
			assert.False(t, cfg.NoQuery)
		} else {
			processors++
		}
	}
	assert.Equal(t, 1, queryOnly)
	assert.Equal(t, 1, processors)

	df, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	require.NoError(t, err)
	assert.Contains(t, string(df), `ENTRYPOINT ["shop"]`)
	assert.Contains(t, string(df), "./cmd/shop")
}

func TestCompose_GivenDockerCompose_ThenTheFileIsValid(t *testing.T) {
	tool, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed (.ci/run installs it)")
	}
	out, err := exec.Command(tool, "-f", composeFile, "config", "-q").CombinedOutput()
	require.NoError(t, err, "docker-compose config: %s", out)
	assert.Empty(t, strings.TrimSpace(string(out)))
}
