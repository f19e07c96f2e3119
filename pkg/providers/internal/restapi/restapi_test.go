package restapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"12":                            12 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Sun, 29 Nov 2026 14:00:30 GMT": 30 * time.Second,
		"Sun, 29 Nov 2026 13:00:00 GMT": 0,
	}
	for in, want := range cases {
		if got := RetryAfter(in, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestStatusKind(t *testing.T) {
	cases := map[int]providers.ErrorKind{
		400: providers.KindInvalid, 401: providers.KindAuth, 403: providers.KindAuth, 404: providers.KindNotFound,
		408: providers.KindTransient, 409: providers.KindConflict, 410: providers.KindNotFound, 422: providers.KindInvalid,
		429: providers.KindRateLimited, 500: providers.KindTransient, 502: providers.KindTransient, 503: providers.KindTransient,
	}
	for st, want := range cases {
		if got := StatusKind(st); got != want {
			t.Errorf("StatusKind(%d) = %s, want %s", st, got, want)
		}
	}
}

func TestDecodeNamesFieldAndOffset(t *testing.T) {
	var out struct {
		Items []struct {
			Price float64 `json:"price"`
		} `json:"items"`
	}
	err := Decode("x", "list", 200, []byte(`{"items":[{"price":"1.0"}]}`), &out)
	if providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "items.price") || !strings.Contains(err.Error(), "offset") {
		t.Errorf("type error: %v", err)
	}
	err = Decode("x", "list", 200, []byte(`{"items":[`), &out)
	if !strings.Contains(err.Error(), "malformed JSON at byte offset") {
		t.Errorf("syntax error: %v", err)
	}
	if err := Decode("x", "list", 200, []byte("  "), &out); !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty body: %v", err)
	}
}

func TestDoJoinsBasePathAndSendsJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/things/a%2Fb" && r.URL.RawPath != "/api/v1/things/a%2Fb" {
			t.Errorf("path %q raw %q", r.URL.Path, r.URL.RawPath)
		}
		if r.Header.Get("Authorization") != "Bearer k" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", r.Header)
		}
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body["a"] != "b" || r.URL.Query().Get("q") != "1" {
			t.Errorf("body %v query %v", body, r.URL.Query())
		}
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("  short and\n stout "))
	}))
	defer srv.Close()
	c, err := New(Config{Provider: "x", BaseURL: srv.URL + "/api/v1/", Authorize: Bearer("k"), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(context.Background(), Request{Op: "get", Method: http.MethodPost, Path: "/things/a%2Fb",
		Query: map[string][]string{"q": {"1"}}, Body: map[string]string{"a": "b"}})
	var pe *providers.Error
	if !asErr(err, &pe) || pe.Status != 418 || pe.Kind != providers.KindInvalid || pe.Err.Error() != "short and stout" {
		t.Fatalf("err = %v", err)
	}
}

func asErr(err error, pe **providers.Error) bool {
	e, ok := err.(*providers.Error)
	*pe = e
	return ok
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "relative/path", "http://user:pw@host"} {
		if _, err := New(Config{Provider: "x", BaseURL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error leaks credentials: %v", err)
		}
	}
}
