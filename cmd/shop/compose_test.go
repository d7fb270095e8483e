package main

import (
	"encoding/json"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/streamfold/streamfold/internal/promtext"
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

// repoPath is a path of the repository, from this package's directory.
func repoPath(p string) string { return filepath.Join("..", "..", filepath.FromSlash(p)) }

// composeServices reads docker-compose.yml's services: what the monitoring
// tests check of them.
func composeServices(t *testing.T) map[string]composeService {
	t.Helper()
	b, err := os.ReadFile(composeFile)
	require.NoError(t, err)
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	return f.Services
}

type composeService struct {
	Image   string   `yaml:"image"`
	Volumes []string `yaml:"volumes"`
	Ports   []string `yaml:"ports"`
}

// mounts are a service's bind mounts: container path -> repository path.
func (s composeService) mounts() map[string]string {
	out := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], "./") {
			out[parts[1]] = strings.TrimPrefix(parts[0], "./")
		}
	}
	return out
}

func TestCompose_GivenPrometheusAndGrafana_ThenPinnedWithTheirMountedFilesInTheRepository(t *testing.T) {
	services := composeServices(t)
	for name, image := range map[string]string{"prometheus": "prom/prometheus:", "grafana": "grafana/grafana:"} {
		s, ok := services[name]
		require.True(t, ok, "service %s", name)
		assert.True(t, strings.HasPrefix(s.Image, image), "%s image %q", name, s.Image)
		tag := strings.TrimPrefix(s.Image, image)
		tag, _, _ = strings.Cut(tag, " ")
		assert.Regexp(t, `^v?\d+\.\d+\.\d+$`, tag, "%s is pinned to a release", name)
		require.NotEmpty(t, s.mounts(), name)
		for in, src := range s.mounts() {
			_, err := os.Stat(repoPath(src))
			assert.NoError(t, err, "%s mounts %s at %s", name, src, in)
		}
	}
	assert.Equal(t, "deploy/prometheus/prometheus.yml", services["prometheus"].mounts()["/etc/prometheus/prometheus.yml"],
		"the image's default command reads this path")
}

func TestCompose_GivenPrometheusConfig_ThenItScrapesEveryShopServiceOnItsHTTPPort(t *testing.T) {
	services := composeServices(t)
	b, err := os.ReadFile(repoPath(services["prometheus"].mounts()["/etc/prometheus/prometheus.yml"]))
	require.NoError(t, err)
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	scraped := map[string]bool{} // host:port
	for _, sc := range cfg.ScrapeConfigs {
		assert.Equal(t, "/metrics", sc.MetricsPath, sc.JobName)
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				scraped[tg] = true
			}
		}
		for _, d := range sc.DNSSDConfigs {
			assert.Equal(t, "A", d.Type, "a compose service's name resolves to its replicas' addresses")
			for _, n := range d.Names {
				scraped[n+":"+strconv.Itoa(d.Port)] = true
			}
		}
	}
	for tg := range scraped {
		host, _, _ := strings.Cut(tg, ":")
		assert.Contains(t, services, host, "target %s is a compose service", tg)
	}
	// Every service that runs the shop (its image) is scraped on the port
	// its --http flag gives.
	var shops []string
	for name, s := range services {
		if s.Image == "streamfold/shop:local" {
			shops = append(shops, name)
			assert.True(t, scraped[name+":8080"], "service %s is not scraped; targets %v", name, scraped)
		}
	}
	assert.ElementsMatch(t, []string{"shop", "query"}, shops)
}

// grafanaDashboard is what the tests read of a dashboard JSON.
type grafanaDashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

const dashboardFile = "deploy/grafana/dashboards/streamfold.json"

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(repoPath(dashboardFile))
	require.NoError(t, err)
	var d grafanaDashboard
	require.NoError(t, json.Unmarshal(b, &d), "%s is not JSON", dashboardFile)
	return d
}

// promMetricName finds the metric names in a PromQL expression: the
// framework's series and the Go and process collectors' are all a
// dashboard of a streamfold service should need.
var promMetricName = regexp.MustCompile(`\b(?:streamfold|go|process)_[a-zA-Z0-9_]+\b`)

// dashboardMetricNames are the metric names the dashboard's queries (and
// its variables' queries) name, histogram suffixes and all.
func dashboardMetricNames(t *testing.T) []string {
	t.Helper()
	d := readDashboard(t)
	seen := map[string]bool{}
	var exprs []string
	for _, v := range d.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, e := range exprs {
		names := promMetricName.FindAllString(e, -1)
		require.NotEmpty(t, names, "query %q names no metric the tests know", e)
		for _, n := range names {
			seen[n] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func TestGrafana_GivenTheProvisioning_ThenTheDashboardIsLoadedOverTheComposePrometheus(t *testing.T) {
	services := composeServices(t)
	grafana := services["grafana"]
	var sources struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile(repoPath(grafana.mounts()["/etc/grafana/provisioning/datasources"] + "/prometheus.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &sources))
	require.Len(t, sources.Datasources, 1)
	ds := sources.Datasources[0]
	assert.Equal(t, "prometheus", ds.Type)
	assert.Equal(t, "http://prometheus:9090", ds.URL, "the compose service, on Prometheus' port")
	assert.Contains(t, services["prometheus"].Ports, "9090:9090")

	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile(repoPath(grafana.mounts()["/etc/grafana/provisioning/dashboards"] + "/streamfold.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &providers))
	require.Len(t, providers.Providers, 1)
	assert.Equal(t, "deploy/grafana/dashboards", grafana.mounts()[providers.Providers[0].Options.Path],
		"the provider reads where the dashboards are mounted")

	d := readDashboard(t)
	assert.Equal(t, "streamfold", d.UID, "http://localhost:3000/d/streamfold")
	var queries int
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotNil(t, p.Datasource, p.Title)
		assert.Equal(t, ds.UID, p.Datasource.UID, "panel %q uses the provisioned data source", p.Title)
		assert.NotEmpty(t, p.Targets, p.Title)
		queries += len(p.Targets)
	}
	assert.Greater(t, queries, 10)
	names := dashboardMetricNames(t)
	for _, want := range []string{
		"streamfold_records_processed_total", "streamfold_records_applied_total", "streamfold_dead_letters_total",
		"streamfold_consumer_lag_records", "streamfold_restore_remaining_records",
		"streamfold_http_requests_total", "streamfold_http_request_duration_seconds_bucket",
		"go_goroutines", "process_cpu_seconds_total",
	} {
		assert.Contains(t, names, want, "the dashboard shows %s", want)
	}
}

// requireDashboardServed fails unless every metric the dashboard names is
// one the exposition serves (a histogram's _bucket, _sum and _count are its
// family's): a renamed metric must not leave an empty panel behind.
func requireDashboardServed(t *testing.T, fams promtext.Families) {
	t.Helper()
	for _, n := range dashboardMetricNames(t) {
		family := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := fams[strings.TrimSuffix(n, suffix)]; ok && strings.HasSuffix(n, suffix) && f.GetType() == dto.MetricType_HISTOGRAM {
				family = strings.TrimSuffix(n, suffix)
			}
		}
		if _, ok := fams[family]; !ok {
			t.Errorf("%s names %s, which /metrics does not serve; it serves %v", dashboardFile, n, slices.Sorted(maps.Keys(fams)))
		}
	}
}
