// Package promcheck helps tests check Prometheus endpoints: scrape one,
// index its samples, and run `promtool check metrics` (and `check rules`)
// on it when promtool is installed (Debian: apt-get install prometheus,
// which ships /usr/bin/promtool; .ci/promtool installs it).
package promcheck

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scrape GETs url (a /metrics endpoint) and returns the body.
func Scrape(t testing.TB, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, body)
	}
	return body
}

// Samples indexes a text-format scrape: the key is the series exactly as
// exposed (`name{a="x",b="y"}`, labels sorted by name as client_golang
// writes them; just `name` without labels), the value its sample.
func Samples(body []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

var nameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)

// Names returns the metric family names of a scrape (from its # TYPE lines,
// so histogram and summary families appear once, without _bucket etc.).
func Names(body []byte) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = true
		} else if line != "" && !strings.HasPrefix(line, "#") {
			out[nameRe.FindString(line)] = true
		}
	}
	return out
}

// Promtool returns the path of promtool, skipping t with a clear message
// when it is not installed.
func Promtool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus, or run .ci/promtool); skipping the promtool check")
	}
	return p
}

// CheckMetrics runs `promtool check metrics` on a scrape and fails t with
// promtool's findings (it lints names, units, _total suffixes, HELP).
func CheckMetrics(t testing.TB, body []byte) {
	t.Helper()
	p := Promtool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
