package vultr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// govultr returns non-2xx answers as plain errors carrying only the body text
// (and a nil *http.Response), so the HTTP status needed to classify a failure is
// captured here, in the RoundTripper, into a per-call record carried by the
// request context.

type callRecordKey struct{}

// callRecord is what the transport saw for one provider call (the last attempt).
type callRecord struct {
	mu         sync.Mutex
	status     int
	retryAfter time.Duration
	sent       bool  // a request was written (or at least a connection existed)
	transport  error // error from the underlying RoundTripper, if any
}

func (r *callRecord) get() (status int, retryAfter time.Duration, sent bool, terr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.retryAfter, r.sent, r.transport
}

func withRecord(ctx context.Context) (context.Context, *callRecord) {
	rec := &callRecord{}
	return context.WithValue(ctx, callRecordKey{}, rec), rec
}

// bearerTransport adds "Authorization: Bearer <key>", bounds each request by
// timeout and records statuses. The key is held only here and is never
// logged or put into an error.
//
// The timeout is applied here rather than as http.Client.Timeout because
// govultr's error handler (vultrErrorHandler, govultr v3.34.0) reads a
// non-2xx body but never closes it: under Client.Timeout that leaves a
// timer goroutine per failed call until the timeout. So a non-2xx body is
// read (at most maxErrorBody bytes) and closed here, and the deadline ends
// with it.
type bearerTransport struct {
	key     string
	base    http.RoundTripper
	timeout time.Duration // whole request including its body; 0 = none
}

// maxErrorBody bounds the error text kept from a non-2xx answer, bytes.
const maxErrorBody = 1 << 20

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if t.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
	}
	r := req.Clone(ctx)
	r.Header.Set("Authorization", "Bearer "+t.key)
	resp, err := t.base.RoundTrip(r)
	switch {
	case err != nil:
		cancel()
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		cancel()
		if rerr != nil {
			return nil, rerr
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	default:
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	}
	if rec, ok := req.Context().Value(callRecordKey{}).(*callRecord); ok {
		rec.mu.Lock()
		if err != nil {
			rec.status = 0
			rec.transport = err
			rec.sent = !isDialError(err)
		} else {
			rec.status = resp.StatusCode
			rec.transport = nil
			rec.sent = true
			rec.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		rec.mu.Unlock()
	}
	return resp, err
}

// cancelOnClose ends a request's deadline when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// isDialError reports whether err happened before the request left this host
// (DNS failure, connection refused): such a call is safe to retry.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// parseRetryAfter reads a Retry-After header (delay-seconds or HTTP-date).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// classify wraps err from a govultr call into a *providers.Error.
//
//	429                -> KindRateLimited (Retry-After kept)
//	401, 403           -> KindAuth
//	404                -> KindNotFound (errors.Is(err, providers.ErrNotFound))
//	409                -> KindConflict
//	other 4xx          -> KindInvalid
//	5xx                -> KindTransient (a mutation's outcome is unknown)
//	2xx + error        -> KindInvalid (malformed or unexpected body)
//	dial/DNS failure   -> KindNotSent
//	timeout, reset, context cancelled -> KindTransient
func classify(ctx context.Context, op string, err error, rec *callRecord) error {
	if err == nil {
		return nil
	}
	pe := &providers.Error{Provider: Name, Op: op, Err: err}
	status, ra, sent, terr := rec.get()
	pe.Status = status
	switch {
	case status == http.StatusTooManyRequests:
		pe.Kind = providers.KindRateLimited
		pe.RetryAfter = ra
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		pe.Kind = providers.KindAuth
	case status == http.StatusNotFound:
		pe.Kind = providers.KindNotFound
	case status == http.StatusConflict:
		pe.Kind = providers.KindConflict
	case status >= 500:
		pe.Kind = providers.KindTransient
	case status >= 400:
		pe.Kind = providers.KindInvalid
	case status >= 200 && status < 300:
		pe.Kind = providers.KindInvalid
		pe.Err = fmt.Errorf("malformed response body: %w", err)
	case terr != nil && !sent:
		pe.Kind = providers.KindNotSent
	default:
		// No HTTP status: timeout, connection reset, cancelled context.
		pe.Kind = providers.KindTransient
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			pe.Err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}
	return pe
}
