package dashboard

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ringmesh/ringmesh/pkg/api"
)

// 10,000 nodes in a real browser: every page of rows arrives, the table
// shows 100 of them, and search narrows it. The times are logged (not
// asserted: CI is a busy machine).
func TestTenThousandNodesInBrowser(t *testing.T) {
	exe := os.Getenv("RINGMESH_CHROMIUM")
	if exe == "" {
		for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(n); err == nil {
				exe = p
				break
			}
		}
	}
	if exe == "" {
		t.Skip("chromium not installed (apt-get install chromium, or .ci/chromium); browser test skipped")
	}
	src := source(10000, true)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	src.Audit, src.Cost = fakeAudit(now), fakeCost(t, now)
	src.Events = fakeEvents(map[string][]api.EventEntry{"vast-00001": fakeSyncEvents(t, "vast-00001", now)}, 2)
	srv := httptest.NewServer(New(src))
	defer srv.Close()
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	wait := func(what, expr, want string) {
		t.Helper()
		var got string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
			if got = v; err == nil && got == want {
				return
			}
		}
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
	wait("all rows", `document.getElementById("shown").textContent`, "(10000 of 10000)")
	t.Logf("10,000 nodes: first full table after %s", time.Since(start).Round(time.Millisecond))
	wait("one page rendered", `String(document.querySelectorAll("#nodes tbody tr[data-node]").length)`, "100")
	poll, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(async () => { const t0 = performance.now(); await (async () => {
		let off = 0; for (;;) { const r = await fetch("/api/dashboard?offset=" + off + "&limit=2000"); const s = await r.json(); if (!s.next_offset) break; off = s.next_offset; } })();
		return performance.now() - t0; })()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000 nodes: one refresh (5 pages of 2,000 rows) fetched and parsed in %.0f ms", poll)
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#search"), "vast-0999")); err != nil {
		t.Fatal(err)
	}
	wait("search", `document.getElementById("shown").textContent`, "(10 of 10000)")
	// The page's policy is enforced: an inline script that got into the
	// document (as injected markup would) does not run.
	wait("inline script blocked", `(function(){const s=document.createElement("script");s.textContent="window.__inline='ran'";document.body.appendChild(s);return window.__inline||"blocked";})()`, "blocked")

	// A node page draws its health history; the unmeasured point breaks
	// the utilisation line into two instead of drawing a 0.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#node=vast-00001")); err != nil {
		t.Fatal(err)
	}
	wait("node page", `document.getElementById("n-title").textContent`, "vast-00001")
	wait("charts", `String(document.querySelectorAll("#n-charts figure svg").length)`, "4")
	wait("gap splits the line", `String(document.querySelectorAll('#n-charts figure[data-series="gpu_util_percent"] polyline').length)`, "2")
	wait("unknown series", `document.querySelector('#n-charts figure[data-series="gpu_temp_c"]').textContent`, "hottest GPU: ?")
	wait("last value", `document.querySelector('#n-charts figure[data-series="disk_used_percent"] figcaption').textContent`, "fullest disk: 44.0%")

	// Its cost so far and price now, and its audit timeline newest first;
	// a node-reported cause with markup is shown as text, no element made.
	wait("cost", `document.getElementById("n-cost").textContent`, "accrued0.2000 USDprice now0.6000 USD/h (vast:dph_total)instancevast/1 (running)")
	wait("audit rows", `Array.from(document.querySelectorAll("#n-audit tbody tr")).map(r => r.cells[0].textContent + "|" + r.cells[1].textContent + "|" + r.cells[2].textContent).join(";")`,
		"2026-12-01 11:59:00|transition|healthy → degraded;2026-12-01 11:58:00|provider_call|stop vast/1 (intent);2026-12-01 11:57:00|transition|joining → healthy")
	wait("audit cause as text", `document.querySelector("#n-audit tbody tr").cells[3].textContent`, `heartbeat: degraded (<img src=x onerror="window.__pwned='yes'">[2J)`)
	wait("no markup injected", `(window.__pwned || "no") + "," + document.querySelectorAll("#node-view img").length`, "no,0")
	wait("audit actor", `document.querySelector("#n-audit tbody tr:nth-child(2)").cells[4].textContent`, "admin:alice via coordinator:c1")
	wait("audit note", `document.getElementById("n-audit-note").textContent`, "newest 3")

	// Its sync history newest first, without the progress report and the
	// RPO answer: the flush with the file that missed and why (markup in
	// the reason shown as text), then the continuous sync.
	wait("sync rows", `Array.from(document.querySelectorAll("#n-sync tbody tr")).map(r => Array.from(r.cells).map(c => c.textContent).join("|")).join(";")`,
		`2026-12-01 11:58:00|flush (preempt:vast notice)|1 file, 4.0 KiB (4.0 KiB sent)|/data/train/c.npz (8.0 KiB): deadline passed <img src=x onerror="window.__pwned='yes'">error: 1 file missed the deadline|8.0 KiB in 1 file;`+
			`2026-12-01 11:56:00|continuous sync|2 files, 3.0 KiB (3.0 KiB sent)|-|0 B in 0 files`)
	wait("miss reason", `document.querySelector("#n-sync tbody tr td.missed div").textContent`,
		`/data/train/c.npz (8.0 KiB): deadline passed <img src=x onerror="window.__pwned='yes'">`)
	wait("sync note", `document.getElementById("n-sync-note").textContent`, "newest 2")
	wait("no markup from the sync history", `(window.__pwned || "no") + "," + document.querySelectorAll("#node-view img").length`, "no,0")

	// A billable node with no known price: unknown, never 0.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#node=vast-00002")); err != nil {
		t.Fatal(err)
	}
	wait("unknown price", `document.getElementById("n-title").textContent + ": " + document.getElementById("n-cost").textContent`,
		"vast-00002: accruedunknown for 0.3 h at an unknown priceprice nowunknowninstancevast/2 (running)")
	wait("no sync history", `document.getElementById("n-sync-note").textContent + "," + document.querySelectorAll("#n-sync tbody tr").length`,
		"no sync or flush results stored for this node,0")
}
