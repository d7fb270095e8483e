package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"

	"github.com/streamfold/streamfold/shop"
)

// The dashboard in a real headless Firefox, the distribution's ESR package,
// driven over WebDriver BiDi (the W3C protocol Firefox speaks natively):
// the page's script runs in Gecko as it does in Chromium.

// bidiListening is the line Firefox writes to stderr once its WebDriver
// BiDi server listens.
var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// firefoxPage is one headless Firefox, its first tab, and what that tab's
// pages logged as errors (console.error calls and uncaught exceptions).
type firefoxPage struct {
	t         *testing.T
	ws        *websocket.Conn
	id        int
	tab       string // the browsing context
	artifacts string
	errors    []string
}

// uiFirefox starts a headless Firefox with a fresh profile at a laptop's
// screen size, and opens a BiDi session on its tab; both go with the test.
func uiFirefox(t *testing.T) *firefoxPage {
	t.Helper()
	bin := uiBrowser(t, "firefox-esr", "firefox-esr", "firefox")
	profile := t.TempDir()
	// No updates, telemetry or first-run pages: the machine has no network.
	prefs := `user_pref("app.update.disabledForTesting", true);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
`
	require.NoError(t, os.WriteFile(filepath.Join(profile, "user.js"), []byte(prefs), 0o644))
	cmd := exec.Command(bin, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port", "0", "--remote-allow-origins", "http://127.0.0.1",
		"--width", "1440", "--height", "900", "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its content processes go with it
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "start firefox")
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	var said []string // what it wrote before, for a failed start
	var saidMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := bidiListening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			saidMu.Lock()
			if len(said) < 50 {
				said = append(said, sc.Text())
			}
			saidMu.Unlock()
		}
	}()
	var url string
	select {
	case url = <-addr:
	case <-time.After(wait):
		saidMu.Lock()
		defer saidMu.Unlock()
		t.Fatalf("firefox did not say where its WebDriver BiDi server listens; it said:\n%s", strings.Join(said, "\n"))
	}
	cfg, err := websocket.NewConfig(url+"/session", "http://127.0.0.1")
	require.NoError(t, err)
	ws, err := websocket.DialConfig(cfg)
	require.NoError(t, err, "connect to firefox's BiDi server")
	t.Cleanup(func() { ws.Close() })
	p := &firefoxPage{t: t, ws: ws, artifacts: uiArtifacts(t)}
	p.call("session.new", map[string]any{"capabilities": map[string]any{}}, nil)
	p.call("session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil)
	var tree struct {
		Contexts []struct{ Context string } `json:"contexts"`
	}
	p.call("browsingContext.getTree", map[string]any{}, &tree)
	require.NotEmpty(t, tree.Contexts)
	p.tab = tree.Contexts[0].Context
	return p
}

// call sends one BiDi command and decodes its result into out (if not
// nil); the events that arrive meanwhile are recorded.
func (p *firefoxPage) call(method string, params, out any) {
	p.t.Helper()
	p.id++
	require.NoError(p.t, p.ws.SetDeadline(time.Now().Add(wait)))
	require.NoError(p.t, websocket.JSON.Send(p.ws, map[string]any{"id": p.id, "method": method, "params": params}))
	for {
		var msg struct {
			ID      *int            `json:"id"`
			Type    string          `json:"type"`
			Method  string          `json:"method"`
			Params  json.RawMessage `json:"params"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		require.NoError(p.t, websocket.JSON.Receive(p.ws, &msg), method)
		if msg.ID == nil {
			p.event(msg.Method, msg.Params)
			continue
		}
		if *msg.ID != p.id {
			continue
		}
		require.Equal(p.t, "success", msg.Type, "%s: %s %s", method, msg.Error, msg.Message)
		if out != nil {
			require.NoError(p.t, json.Unmarshal(msg.Result, out), method)
		}
		return
	}
}

// event records a log entry of level error: console.error or an uncaught
// exception ("javascript").
func (p *firefoxPage) event(method string, params json.RawMessage) {
	if method != "log.entryAdded" {
		return
	}
	var e struct {
		Level, Type, Text string
	}
	if json.Unmarshal(params, &e) == nil && e.Level == "error" {
		p.errors = append(p.errors, fmt.Sprintf("%s: %s", e.Type, e.Text))
	}
}

// eval runs a JavaScript expression in the tab and decodes its value, which
// travels as JSON.
func (p *firefoxPage) eval(expr string, out any) {
	p.t.Helper()
	var r struct {
		Type   string `json:"type"` // success or exception
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	p.call("script.evaluate", map[string]any{
		"expression": "JSON.stringify(" + expr + ")", "target": map[string]any{"context": p.tab}, "awaitPromise": true,
	}, &r)
	require.Equal(p.t, "success", r.Type, "%s: %s", expr, r.ExceptionDetails.Text)
	var s string
	require.NoError(p.t, json.Unmarshal(r.Result.Value, &s), expr)
	require.NoError(p.t, json.Unmarshal([]byte(s), out), expr)
}

// until waits for a JavaScript condition of the page to hold.
func (p *firefoxPage) until(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var ok bool
		p.eval("!!("+expr+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var said []string
			p.eval(uiSaysScript, &said)
			p.screenshot("firefox-failed")
			p.t.Fatalf("the page never showed %s (%s); it says %q; errors: %q", what, expr, said, p.errors)
		}
		time.Sleep(50 * time.Millisecond) // the polling interval, as chromedp.Poll's
	}
}

// navigate loads url in the tab and waits for it to be complete.
func (p *firefoxPage) navigate(url string) {
	p.t.Helper()
	p.call("browsingContext.navigate", map[string]any{"context": p.tab, "url": url, "wait": "complete"}, nil)
}

// typeInto focuses the element with id and types text on the keyboard.
func (p *firefoxPage) typeInto(id, text string) {
	p.t.Helper()
	var focused bool
	p.eval(fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.focus(); return document.activeElement === e; })()`, id), &focused)
	require.True(p.t, focused, "#%s takes the focus", id)
	var keys []map[string]string
	for _, r := range text {
		keys = append(keys, map[string]string{"type": "keyDown", "value": string(r)}, map[string]string{"type": "keyUp", "value": string(r)})
	}
	p.call("input.performActions", map[string]any{"context": p.tab, "actions": []any{
		map[string]any{"type": "key", "id": "keyboard", "actions": keys},
	}}, nil)
}

// enter is the Enter key, in WebDriver's key codes.
const enter = "\uE007"

// screenshot saves the whole page as ui-<name>.png.
func (p *firefoxPage) screenshot(name string) {
	p.t.Helper()
	var shot struct{ Data string }
	p.call("browsingContext.captureScreenshot", map[string]any{"context": p.tab, "origin": "document"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	require.NoError(p.t, err)
	file := filepath.Join(p.artifacts, "ui-"+name+".png")
	require.NoError(p.t, os.WriteFile(file, png, 0o644))
	p.t.Logf("screenshot %s", file)
}

// The dashboard in Firefox: it loads and takes the token from the keyboard,
// draws every topic of the topology, follows the shop without a reload and
// finds a customer registered over HTTP in its table browser, with no error
// logged on the way.
func TestUI_GivenTheShop_ThenTheDashboardWorksInFirefox(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	p := uiFirefox(t)

	p.navigate(s.base + "/ui")
	p.until("the token form", `!document.getElementById('auth').hidden`)
	p.typeInto("auth-token", s.cfg.AdminToken+enter)
	p.until("the topology", `document.querySelectorAll('#graph .node').length > 0`)
	p.until("ready", `document.querySelector('#status .ready') !== null`)

	// Every topic, internal ones included.
	p.eval(`(() => { document.getElementById('show-internal').click(); return true; })()`, new(bool))
	var want []string
	for _, ti := range shop.Topology(s.cfg.Partitions, slog.New(slog.DiscardHandler)).Topics() {
		want = append(want, ti.Name)
	}
	p.until("every topic", fmt.Sprintf(`document.querySelectorAll('#graph .node[data-topic]').length === %d`, len(want)))
	var shown []string
	p.eval(`[...document.querySelectorAll('#graph .node[data-topic]')].map((e) => e.dataset.topic)`, &shown)
	assert.ElementsMatch(t, want, shown)
	p.until("every group's row", `document.querySelectorAll('#groups-table tbody tr').length > 0`)
	var groups []string
	p.eval(`[...document.querySelectorAll('#groups-table tbody tr')].map((r) => r.dataset.group)`, &groups)
	assert.Equal(t, s.app.Runtime().GroupNames(), groups)

	// A customer registered over HTTP: the page follows, and finds it.
	var before string
	processed := `document.querySelector('#groups-table tr[data-group="customers"] td:nth-child(4)').textContent`
	p.eval(processed, &before)
	var created struct{ ID string }
	resp := s.do(http.MethodPost, "/customers", `{"name":"Grace Hopper","email":"grace@example.com"}`, &created)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	s.awaitVersion(created.ID, 1)
	p.until("the customers group's counter move", fmt.Sprintf(`%s !== %q`, processed, before))
	var chosen bool
	p.eval(uiChooseScript("lookup-route", "/customers/{id}"), &chosen)
	require.True(t, chosen, "the lookup offers /customers/{id}")
	p.typeInto("lookup-key", created.ID+enter)
	p.until("the customer", `document.getElementById('browser-result').textContent.includes('Grace Hopper')`)
	var doc string
	p.eval(`document.getElementById('browser-result').textContent`, &doc)
	var c shop.Customer
	require.NoError(t, json.Unmarshal([]byte(doc), &c), doc)
	assert.Equal(t, created.ID, c.ID)
	assert.Equal(t, "grace@example.com", c.Email)

	p.screenshot("firefox-full")
	p.eval("true", new(bool)) // reads what the page logged until now
	assert.Empty(t, p.errors, "the page logged errors in Firefox")
}
