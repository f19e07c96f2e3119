package fakeapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestFaultMatchingAndCounts(t *testing.T) {
	h := NewHarness(nil)
	applied := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		applied++
		w.WriteHeader(http.StatusOK)
	})
	render := func(w http.ResponseWriter, r *http.Request, f Fault) { w.WriteHeader(599) }
	srv := httptest.NewServer(h.Wrap(render, next))
	defer srv.Close()
	do := func(method, path string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	h.Inject(Fault{Kind: ServerError, Count: 2, Method: http.MethodPut, Path: "/a/"})
	if do("GET", "/a/1") != 200 || do("PUT", "/b/1") != 200 {
		t.Error("filter ignored")
	}
	if do("PUT", "/a/1") != 599 || do("PUT", "/a/2") != 599 || do("PUT", "/a/3") != 200 {
		t.Error("Count=2 not honoured")
	}
	h.Inject(Fault{Kind: ServerError, Count: -1})
	for i := 0; i < 3; i++ {
		if do("GET", "/x") != 599 {
			t.Error("negative count must persist")
		}
	}
	h.ClearFaults()
	if do("GET", "/x") != 200 {
		t.Error("ClearFaults")
	}
	h.Inject(Fault{Kind: ServerError, AfterApply: true})
	before := applied
	if do("POST", "/x") != 599 || applied != before+1 {
		t.Error("AfterApply must run the handler and then answer the fault")
	}

	calls := h.Calls()
	if len(calls) != 10 || calls[2].Fault != ServerError || calls[2].Status != 599 || calls[0].Status != 200 {
		t.Errorf("call log %+v", calls)
	}
	if n := h.CountCalls("PUT", "/a/"); n != 3 {
		t.Errorf("CountCalls = %d", n)
	}
	if n := len(h.MutatingCalls()); n != 5 {
		t.Errorf("MutatingCalls = %d", n)
	}
	h.ResetCalls()
	if do("GET", "/y") != 200 || len(h.Calls()) != 1 || h.Calls()[0].Status != 200 {
		t.Errorf("after reset: %+v", h.Calls())
	}
}
