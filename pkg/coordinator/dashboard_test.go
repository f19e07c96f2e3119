package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// chromiumPath finds a Chromium for the dashboard tests ($RINGMESH_CHROMIUM
// first); the tests skip without one.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("RINGMESH_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skip("chromium not installed (apt-get install chromium, or .ci/chromium); dashboard browser test skipped")
	return ""
}

// browser starts a headless Chromium with a fresh profile and collects
// every console error and uncaught exception of the page.
func browser(t *testing.T) (context.Context, func() []string) {
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	var mu sync.Mutex
	var errs []string
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancelC()
		cancelA()
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	t.Cleanup(func() { cancelC(); cancelA() })
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, fmt.Sprintf("%s%s", a.Value, a.Description))
				}
				errs = append(errs, "console.error: "+strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			errs = append(errs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), errs...) }
}

// waitJS evaluates expr (a JS expression yielding a string) until it
// equals want, or fails after a generous deadline.
func waitJS(t *testing.T, ctx context.Context, what, expr string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := chromedp.Run(ectx, chromedp.Evaluate[string](expr))
		cancel()
		got = v
		if err == nil {
			for _, w := range want {
				if got == w {
					return got
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: got %q, want one of %q", what, got, want)
	return ""
}

func rowState(node string) string {
	return fmt.Sprintf(`(function(){const r=document.querySelector('#nodes tr[data-node=%q] td.state');return r?r.textContent:"";})()`, node)
}

// The dashboard in a real browser, behind the HTTP token: it loads with no
// console error, a node that joins and a node that goes silent show up
// without a reload, the node page shows the node, and a node-reported
// string with markup stays text.
func TestDashboardInBrowser(t *testing.T) {
	ctx, consoleErrors := browser(t)
	tokFile := filepath.Join(t.TempDir(), "token")
	const tok = "0123456789abcdef-dash"
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// runpod-2's instance has been running 20 minutes at 0.60 USD/h.
	tracker := cost.New(cost.Options{})
	price := providers.Price{PerHour: 0.6, Currency: "USD", Source: "runpod:costPerHr"}
	for i := 2; i >= 0; i-- {
		o := cost.Observation{Provider: "runpod", InstanceID: "p2", NodeID: "runpod-2", State: providers.StateRunning, Billable: true, Price: price,
			At: time.Now().Add(-time.Duration(i) * 10 * time.Minute)}
		if err := tracker.Observe(o); err != nil {
			t.Fatal(err)
		}
	}
	h := startCoordinator(t, coordinator.Config{HTTPTokenFile: tokFile, Cost: tracker,
		Thresholds: registry.Thresholds{SuspectAfter: 1500 * time.Millisecond, DeadAfter: 10 * time.Minute}})
	a1, _ := startAgent(t, []string{h.url}, fakeNode{id: "vast-1", provider: "vast", instance: "1", root: t.TempDir()}, "")

	url := "http://" + h.coord.HTTPAddr() + "/#token=" + tok
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "vast-1 row", rowState("vast-1"), "healthy")
	waitJS(t, ctx, "mark the page", `window.__noReload = "yes"`, "yes")
	// The token left the address bar (it is kept in sessionStorage).
	waitJS(t, ctx, "token out of URL", `location.hash.includes("token") ? "still there" : "gone"`, "gone")

	// A node joins: it appears without a reload.
	_, _ = startAgent(t, []string{h.url}, fakeNode{id: "runpod-2", provider: "runpod", instance: "p2", root: t.TempDir()}, "")
	waitJS(t, ctx, "runpod-2 joins", rowState("runpod-2"), "healthy")
	waitJS(t, ctx, "summary counts", `document.getElementById("counts").textContent.startsWith("2 nodes") ? "ok" : document.getElementById("counts").textContent`, "ok")
	// The cluster's cost per UTC day: 14 bars for USD, today's with runpod-2's instance.
	waitJS(t, ctx, "cost chart", `(function(){const b=document.querySelectorAll('#cost-charts figure[data-currency="USD"] rect.bar');`+
		`if(b.length!==14)return "bars "+b.length+": "+document.getElementById("cost-box").textContent;`+
		`const last=b[13].querySelector("title").textContent;return last.startsWith(new Date().toISOString().slice(0,10)) && last.endsWith(" USD, 1 instances") ? "ok" : last;})()`, "ok")

	// A node goes silent: suspect, without a reload.
	a1.PauseHeartbeats(true)
	waitJS(t, ctx, "vast-1 silent", rowState("vast-1"), "suspect")

	// A node-reported string with markup is shown as text, never run.
	publishHello(t, h.url, "vast-xss", `<img src=x onerror="window.__pwned='yes'">`)
	waitJS(t, ctx, "markup node", `(function(){const r=document.querySelector('#nodes tr[data-node="vast-xss"]');return r?r.cells[10].textContent:"";})()`,
		`<img src=x onerror="window.__pwned='yes'">`)
	waitJS(t, ctx, "markup stays text", `(window.__pwned || "no") + "," + document.querySelectorAll("#nodes img").length`, "no,0")

	// Search narrows the table.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#search"), "runpod")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "search", `Array.from(document.querySelectorAll("#nodes tbody tr")).map(r=>r.dataset.node).join(",")`, "runpod-2")

	// The node page.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#nodes tr[data-node="runpod-2"] a`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "node page", `document.getElementById("n-title").textContent`, "runpod-2")
	waitJS(t, ctx, "node page facts", `document.getElementById("n-facts").textContent.includes("runpod") ? "ok" : ""`, "ok")
	// Its cost so far, and its audit timeline (newest first) with the
	// coordinator's transition of it to healthy.
	waitJS(t, ctx, "node cost", `document.getElementById("n-cost").textContent`, "accrued0.2000 USDprice now0.6000 USD/h (runpod:costPerHr)instancerunpod/p2 (running)")
	waitJS(t, ctx, "node audit", `Array.from(document.querySelectorAll("#n-audit tbody tr")).some(r => r.cells[1].textContent === "transition" && r.cells[2].textContent.endsWith("→ healthy") && r.cells[4].textContent === "coordinator:hetzner-cpu1") ? "ok" : document.getElementById("n-audit").textContent`, "ok")
	waitJS(t, ctx, "audit newest first", `(function(){const t=Array.from(document.querySelectorAll("#n-audit tbody tr")).map(r=>r.cells[0].textContent);return t.length>0 && t.every((x,i)=>i===0||t[i-1]>=x)?"ok":t.join(",");})()`, "ok")
	// Its health history comes from the agent's heartbeats (a disk is measured here; no GPU).
	waitJS(t, ctx, "health charts", `document.querySelectorAll("#n-charts figure svg").length + ":" + ((document.querySelector('#n-charts figure[data-series="disk_used_percent"] figcaption') || {}).textContent || "").endsWith("%")`, "4:true")
	// Its sync history, from MESH_EVT as `meshctl events --kind sync` reads it: a flush with the file that missed and why.
	publishEvent(t, h.url, "runpod-2", bus.KindSync, bus.MessageID("runpod-2", "sync1", 1), events.Sync{Phase: "flush", Trigger: "stop:test", BytesSent: 100,
		Missed: []events.FileRef{{Path: "/data/train/x.npz", Size: 2048, Reason: "target unreachable"}}})
	waitJS(t, ctx, "sync history", `Array.from(document.querySelectorAll("#n-sync tbody tr")).map(r => r.cells[1].textContent + "|" + r.cells[3].textContent).join(";")`,
		"flush (stop:test)|/data/train/x.npz (2.0 KiB): target unreachable")

	// An action asks for confirmation; dismissed, nothing is done.
	var dmu sync.Mutex
	var dialogs []string
	opening := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range opening {
			if err != nil {
				return
			}
			dmu.Lock()
			dialogs = append(dialogs, string(ev.Type)+": "+ev.Message)
			dmu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	waitJS(t, ctx, "actions offered", `document.getElementById("n-actions").hidden ? "hidden" : "shown"`, "shown")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#a-sync`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "sync dismissed", `document.getElementById("a-result").textContent`, "not confirmed; nothing done")
	dmu.Lock()
	if len(dialogs) != 1 || !strings.Contains(dialogs[0], "confirm: Sync node runpod-2 now?") {
		t.Errorf("dialogs: %q, want one confirm for the sync of runpod-2", dialogs)
	}
	dmu.Unlock()
	// Stop goes through the coordinator's gates first: here there is no provider, so it is refused before any prompt.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#a-stop`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "stop refused", `document.getElementById("a-result").textContent.startsWith("refused: act: no providers configured") ? "ok" : document.getElementById("a-result").textContent`, "ok")

	waitJS(t, ctx, "no reload", `window.__noReload || "reloaded"`, "yes")
	if errs := consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors on the dashboard:\n%s", strings.Join(errs, "\n"))
	}

	// The coordinator goes away: the banner says the data is no longer fresh.
	h.stop()
	waitJS(t, ctx, "stale banner", `(function(){const b=document.getElementById("banner");return !b.hidden && b.textContent.startsWith("cannot refresh") ? "shown" : b.textContent;})()`, "shown")
}

// publishHello publishes one hello for node as an agent would, with the
// given agent version (a string the node controls).
func publishHello(t *testing.T, url, node, version string) {
	t.Helper()
	publishEvent(t, url, node, bus.KindHello, bus.MessageID(node, "xss1", 1), events.Hello{AgentVersion: version, Boot: "xss1", Hostname: node,
		Provider: "vast", ProviderSource: "config", Paths: paths.For("vast", "", nil), HeartbeatIntervalSeconds: 5, GoVersion: "go1.26", OS: "linux", Arch: "amd64"})
}

// publishEvent publishes body as node's event of kind, with the node's own
// credentials.
func publishEvent(t *testing.T, url, node, kind, id string, body any) {
	t.Helper()
	nc, err := testutil.Lookup(url).Connect(t, []string{url}, auth.RoleNode, node)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subj, err := bus.EventSubject(node, kind)
	if err != nil {
		t.Fatal(err)
	}
	env, err := bus.NewEnvelope(kind, id, node, time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(env)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subj, data, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}
