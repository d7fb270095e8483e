package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
)

// The dashboard (GET /ui) in a real headless Chromium, the distribution's
// package, driven over the DevTools protocol: what an operator sees.

// uiChromium is the browser binary: the Debian package's, or one on PATH.
func uiChromium(t *testing.T) string {
	t.Helper()
	return uiBrowser(t, "chromium", "/usr/bin/chromium", "chromium", "chromium-browser")
}

// uiBrowser is the first of names found (a path or a command on PATH).
// Without one the browser tests skip, unless STREAMFOLD_REQUIRE_BROWSER=1
// (set by .ci/run), where they fail: CI must not pass by skipping them.
func uiBrowser(t *testing.T, pkg string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("STREAMFOLD_REQUIRE_BROWSER") == "1" {
		t.Fatalf("no %s found (apt-get install %s), and STREAMFOLD_REQUIRE_BROWSER=1", pkg, pkg)
	}
	t.Skipf("browser tests skip: no %s found (apt-get install %s)", pkg, pkg)
	return ""
}

// uiArtifacts is where screenshots go: $STREAMFOLD_ARTIFACTS, else a
// directory of the test's.
func uiArtifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("STREAMFOLD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("screenshots in %s", dir)
	return dir
}

// uiPage is one browser tab and what its page wrote to the console.
type uiPage struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	mu        sync.Mutex
	errors    []string // uncaught exceptions, console.error calls, browser log errors
}

// uiOpen starts a headless Chromium with a fresh profile and no network of
// its own, and opens a tab; both go with the test.
func uiOpen(t *testing.T) *uiPage {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(uiChromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		// A laptop's screen.
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	p := &uiPage{t: t, artifacts: uiArtifacts(t)}
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(p.listen))
	// Bounds a hung browser; the steps bound themselves (wait) well below.
	ctx, cancelTime := context.WithTimeout(ctx, 4*wait)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	p.ctx = ctx
	return p
}

// listen runs in the tab's event loop: it only records.
func (p *uiPage) listen(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var args []string
		for _, a := range e.Args {
			args = append(args, string(a.Value)+a.Description)
		}
		msg = "console.error: " + strings.Join(args, " ")
	case *cdplog.EventEntryAdded:
		if e.Entry.Level != cdplog.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors = append(p.errors, msg)
}

// requireNoConsoleErrors fails the test on anything the page reported as an error.
func (p *uiPage) requireNoConsoleErrors() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Empty(p.t, p.errors, "the page reported errors")
}

func (p *uiPage) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	require.NoError(p.t, chromedp.Do(p.ctx, steps...))
}

// until waits for a JavaScript condition of the page to hold.
func (p *uiPage) until(what, expr string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(wait)))
	if err != nil {
		// What the page says instead: its status line and messages.
		said, _ := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](uiSaysScript))
		p.screenshot("failed")
		p.mu.Lock()
		errs := slices.Clone(p.errors)
		p.mu.Unlock()
		require.NoError(p.t, err, "the page never showed %s (%s); it says %q; errors: %q", what, expr, said, errs)
	}
}

// polled waits until the page has drawn its status n more times: every
// poll but the last has refreshed the rest of the page too.
func (p *uiPage) polled(n int) {
	p.t.Helper()
	for range n {
		before := uiEval[string](p, `document.getElementById('status').textContent`)
		p.until("a poll", fmt.Sprintf(`document.getElementById('status').textContent !== %q`, before))
	}
}

func uiEval[T any](p *uiPage, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	require.NoError(p.t, err, expr)
	return v
}

// press focuses a button and presses Enter on it, as a keyboard user does.
func (p *uiPage) press(sel string) {
	p.t.Helper()
	p.do(chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent("\r"))
}

// uiSaysScript is what the page says when a wait failed: its status line
// and messages.
const uiSaysScript = `[...document.querySelectorAll('#status, .message')].map((e) => '#' + e.id + ': ' + e.textContent)`

// uiChooseScript picks value in the <select> with id as a user would: it
// changes, and says so. It is false when there is no such option.
func uiChooseScript(id, value string) string {
	return fmt.Sprintf(`(() => { const s = document.getElementById(%q);
		if (![...s.options].some((o) => o.value === %q)) return false;
		s.value = %q; s.dispatchEvent(new Event('change', { bubbles: true })); return true; })()`, id, value, value)
}

// choose picks value in a <select> (uiChooseScript).
func (p *uiPage) choose(id, value string) {
	p.t.Helper()
	require.True(p.t, uiEval[bool](p, uiChooseScript(id, value)), "no option %q in #%s", value, id)
}

// screenshot saves the whole page as ui-<name>.png.
func (p *uiPage) screenshot(name string) {
	p.t.Helper()
	p.save(name, chromedp.FullScreenshot(100))
}

// screenshotOf saves one section of the page (an element id) as ui-<name>.png.
func (p *uiPage) screenshotOf(name, id string) {
	p.t.Helper()
	p.save(name, chromedp.Screenshot(chromedp.ID(id)))
}

func (p *uiPage) save(name string, shot chromedp.Action[[]byte]) {
	p.t.Helper()
	buf, err := chromedp.Run(p.ctx, shot)
	require.NoError(p.t, err)
	file := filepath.Join(p.artifacts, "ui-"+name+".png")
	require.NoError(p.t, os.WriteFile(file, buf, 0o644))
	p.t.Logf("screenshot %s", file)
}

// login opens the dashboard of s and gives it the admin token, typed into
// its form and sent with Enter.
func (p *uiPage) login(s *shopRun) {
	p.t.Helper()
	p.do(chromedp.Navigate(s.base + "/ui"))
	p.until("the token form", `!document.getElementById('auth').hidden`)
	p.do(chromedp.SendKeys(chromedp.ID("auth-token"), s.cfg.AdminToken+"\r"))
	p.until("the topology", `document.querySelectorAll('#graph .node').length > 0`)
	p.until("ready", `document.querySelector('#status .ready') !== null`)
}

func TestUI_GivenTheShop_ThenTheDashboardShowsItLiveInABrowser(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	p := uiOpen(t)
	p.login(s)

	t.Run("the graph shows every topic of the topology, with the direction of each edge", func(t *testing.T) {
		p.t = t
		var want []string
		for _, ti := range shop.Topology(s.cfg.Partitions, slog.New(slog.DiscardHandler)).Topics() {
			want = append(want, ti.Name)
		}
		require.NotEmpty(t, want)
		shown := func() []string {
			return uiEval[[]string](p, `[...document.querySelectorAll('#graph .node[data-topic]')].map((e) => e.dataset.topic).sort()`)
		}
		// By default a group's internal topics are folded into it.
		folded := shown()
		assert.Less(t, len(folded), len(want))
		assert.Subset(t, want, folded)
		assert.Contains(t, folded, shop.CustomerEvents.Name)
		p.screenshotOf("topology", "topology")

		p.do(chromedp.Click(chromedp.ID("show-internal")))
		p.until("the internal topics", fmt.Sprintf(`document.querySelectorAll('#graph .node[data-topic]').length === %d`, len(want)))
		slices.Sort(want)
		assert.Equal(t, want, shown())
		// Writers point at their topics, topics at their readers.
		edge := func(from, to string) bool {
			return uiEval[bool](p, fmt.Sprintf(`document.querySelector('#graph .edge[data-from=%q][data-to=%q]') !== null`, from, to))
		}
		assert.True(t, edge("t:customer-events", "p:customers"))
		assert.True(t, edge("p:customers", "t:customers-table"))
		assert.False(t, edge("t:customers-table", "p:customers"), "the group writes its table, it does not read it")
		assert.Equal(t, "table", uiEval[string](p, `document.querySelector('#graph .node[data-topic="customers-table"]').dataset.kind`))
		assert.Equal(t, "stream", uiEval[string](p, `document.querySelector('#graph .node[data-topic="customer-events"]').dataset.kind`))

		// Every group has its row, with its state from the coordinator.
		p.until("every group's state", `[...document.querySelectorAll('#groups-table tbody tr')].length > 0`)
		groups := uiEval[[]string](p, `[...document.querySelectorAll('#groups-table tbody tr')].map((r) => r.dataset.group)`)
		assert.Equal(t, s.app.Runtime().GroupNames(), groups)
		// A group's partitions, opened from the keyboard: each with its
		// owner, here the one instance.
		p.press(`#partitions details[data-group="customers"] summary`)
		// (Owners come from the coordinator, described every few seconds.)
		owner := s.app.Advertised() + " (this instance)"
		p.until("the partitions of customers with their owner", fmt.Sprintf(`(() => {
			const owners = [...document.querySelectorAll('#partitions details[data-group="customers"][open] tbody tr td:nth-child(2)')].map((e) => e.textContent);
			return owners.length === %d && owners.every((o) => o === %q); })()`, s.cfg.Partitions, owner))
		// Every table open here has its restore row, restored (the shop is ready).
		var tables []string
		for table := range s.app.Runtime().Progress() {
			tables = append(tables, table)
		}
		slices.Sort(tables)
		p.until("every table restored", fmt.Sprintf(`[...document.querySelectorAll('#restore-body tbody tr')].length === %d`, len(tables)))
		assert.Equal(t, tables, uiEval[[]string](p, `[...document.querySelectorAll('#restore-body tbody tr')].map((r) => r.dataset.table)`))
		for _, st := range uiEval[[]string](p, `[...document.querySelectorAll('#restore-body tbody tr td:nth-child(3)')].map((e) => e.textContent)`) {
			var done, all int
			_, err := fmt.Sscanf(st, "%d of %d restored", &done, &all)
			require.NoError(t, err, st)
			assert.Equal(t, all, done, st)
		}
		p.screenshotOf("restore", "restore")
		p.screenshotOf("graph-all-topics", "topology")
		p.screenshotOf("groups", "groups")
	})

	t.Run("a customer registered over HTTP appears in the table browser", func(t *testing.T) {
		p.t = t
		processed := func() string {
			return uiEval[string](p, `document.querySelector('#groups-table tr[data-group="customers"] td:nth-child(4)').textContent`)
		}
		before := processed()
		var created struct{ ID string }
		resp := s.do(http.MethodPost, "/customers", `{"name":"Ada Lovelace","email":"ada@example.com"}`, &created)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		s.awaitVersion(created.ID, 1)

		// The page follows without a reload: the group's counter moves, and
		// its rate is known after two polls.
		p.until("the customers group's counter move", fmt.Sprintf(`(() => {
			const cells = document.querySelectorAll('#groups-table tr[data-group="customers"] td');
			return cells[3].textContent !== %q && cells[4].textContent !== '–'; })()`, before))

		p.choose("lookup-route", "/customers/{id}")
		p.do(chromedp.SendKeys(chromedp.ID("lookup-key"), created.ID),
			chromedp.Click(chromedp.CSS(`#lookup-form button[type=submit]`)))
		p.until("the customer", `document.getElementById('browser-result').textContent.includes('Ada Lovelace')`)
		var doc shop.Customer
		require.NoError(t, json.Unmarshal([]byte(uiEval[string](p, `document.getElementById('browser-result').textContent`)), &doc))
		assert.Equal(t, created.ID, doc.ID)
		assert.Equal(t, "ada@example.com", doc.Email)

		// And listed by its index.
		p.choose("list-resource", "customers")
		p.choose("list-filter", "state")
		p.do(chromedp.SendKeys(chromedp.ID("list-value"), shop.StateActive),
			chromedp.Click(chromedp.CSS(`#list-form button[type=submit]`)))
		p.until("the listing", `document.getElementById('browser-message').textContent.includes('item(s)')`)
		var items []shop.Customer
		require.NoError(t, json.Unmarshal([]byte(uiEval[string](p, `document.getElementById('browser-result').textContent`)), &items))
		require.Len(t, items, 1)
		assert.Equal(t, "Ada Lovelace", items[0].Name)
		p.screenshotOf("table-browser", "browser")
	})

	t.Run("an aggregate's history is shown in the table browser", func(t *testing.T) {
		p.t = t
		addProducts(t, s, "apple")
		status, rep := s.command("uicart", "", `{"type":"AddItem","data":{"productId":"apple","quantity":2}}`)
		require.Equal(t, http.StatusOK, status, rep.Detail)
		require.Eventually(t, func() bool {
			var history processors.Timeline
			s.do(http.MethodGet, "/carts/uicart/events", "", &history)
			return len(history.Events) == 2
		}, wait, 10*time.Millisecond)

		p.choose("lookup-route", "/carts/{id}/events")
		p.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('lookup-key').value = ''`),
			chromedp.SendKeys(chromedp.ID("lookup-key"), "uicart"))
		p.press(`#lookup-form button[type=submit]`)
		p.until("the history", `document.getElementById('browser-message').textContent.startsWith('GET /carts/uicart/events: found')`)
		var history processors.Timeline
		require.NoError(t, json.Unmarshal([]byte(uiEval[string](p, `document.getElementById('browser-result').textContent`)), &history))
		var types []string
		for _, e := range history.Events {
			types = append(types, e.Type)
		}
		assert.Equal(t, []string{shop.CartCreatedType, shop.ItemAddedType}, types)
		p.screenshotOf("history", "browser")
	})

	t.Run("a dead letter appears and re-driving it from the page applies it", func(t *testing.T) {
		p.t = t
		// Given an update of a customer nobody registered: dead-lettered.
		update, _ := eventRecord(t, "una", shop.CustomerUpdatedType, map[string]string{"name": "Una Updated"})
		cl := kafkaClient(t, s.brokers())
		produce(t, cl, update)
		consumeAll(t, s.brokers(), "customers-dlq", 1)

		p.choose("dlq-group", "customers")
		p.press(`#dlq-form button[type=submit]`)
		row := `#dlq-table tr[data-key="una"]`
		p.until("the dead letter", fmt.Sprintf(`document.querySelector('%s') !== null`, row))
		assert.Contains(t, uiEval[string](p, fmt.Sprintf(`document.querySelector('%s').textContent`, row)), "unknown customer")
		assert.Contains(t, uiEval[string](p, fmt.Sprintf(`document.querySelector('%s details').textContent`, row)), processors.HeaderExceptionMessage,
			"its headers are shown")
		p.screenshotOf("dead-letter", "deadletters")

		redrive := func(force, confirm bool) {
			p.press(row + ` button.redrive`)
			p.until("the confirmation", `document.getElementById('redrive-dialog').open`)
			if force {
				p.do(chromedp.Click(chromedp.ID("redrive-force")))
				p.save("confirm", chromedp.CaptureScreenshot())
			}
			button := "redrive-cancel"
			if confirm {
				button = "redrive-confirm"
			}
			p.press("#" + button)
			p.until("the dialog closed", `!document.getElementById('redrive-dialog').open`)
		}
		state := func() string {
			return uiEval[string](p, fmt.Sprintf(`document.querySelector('%s .redrive-state').textContent`, row))
		}

		// When the re-drive is not confirmed, nothing is re-driven, and
		// the page says so until the next re-drive: the polls that
		// refresh the dead letters' count do not replace it.
		redrive(false, false)
		p.until("the cancel said", `document.getElementById('dlq-message').textContent === 'Re-drive cancelled.'`)
		p.polled(2)
		assert.Equal(t, "Re-drive cancelled.", uiEval[string](p, `document.getElementById('dlq-message').textContent`))
		assert.Contains(t, uiEval[string](p, `document.getElementById('dlq-count').textContent`), "1 dead letter(s) in customers-dlq")
		assert.Equal(t, "never", state())

		// When the customer is registered and the update re-driven from the page.
		reg, _ := eventRecord(t, "una", shop.CustomerRegisteredType, shop.CustomerRegistered{Name: "Una", Email: "una@example.com"})
		produce(t, cl, reg)
		s.awaitVersion("una", 1)
		redrive(false, true)
		// Then the group refuses it, as the command line's re-drive: the
		// registration came after it. The page says so.
		p.until("the stale state", fmt.Sprintf(`document.querySelector('%s .redrive-state').textContent.startsWith('stale')`, row))
		assert.Equal(t, int64(1), s.awaitVersion("una", 1).Version)
		p.screenshotOf("stale", "deadletters")

		// When it is re-driven again, forced.
		redrive(true, true)
		// Then it is applied: the page says so, the customer has it.
		p.until("the applied state", fmt.Sprintf(`document.querySelector('%s .redrive-state').textContent.startsWith('applied (forced)')`, row))
		assert.Equal(t, "Una Updated", s.awaitVersion("una", 2).Name)
		p.screenshotOf("applied", "deadletters")
	})

	p.t = t
	p.screenshot("full")
	p.requireNoConsoleErrors()
}
