// Package restapi is the small HTTP/JSON plumbing shared by the hand-written
// cloud clients (vast, runpod, lambda): one request with auth, an optional
// client-side rate limiter, classification of every failure into a
// *providers.Error, and strict JSON decoding whose errors name the field or
// byte offset. It never logs or returns the API key.
package restapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// DefaultTimeout is the whole-request timeout of the default HTTP client.
const DefaultTimeout = 30 * time.Second

// MaxBody is the largest response body read; more is an invalid answer.
const MaxBody = 32 << 20

// Limiter paces requests (golang.org/x/time/rate.Limiter satisfies it).
type Limiter interface {
	Wait(ctx context.Context) error
}

// ErrorInfo is what a provider-specific parser extracts from an error answer.
type ErrorInfo struct {
	Kind    providers.ErrorKind // "" keeps the kind derived from the HTTP status
	Code    string              // provider's error code, e.g. "no_such_instance"
	Message string              // human message
}

// Config configures a Client.
type Config struct {
	Provider   string // "vast", ...; used in errors and logs
	BaseURL    string // scheme://host[/prefix]; request paths are appended
	HTTPClient *http.Client
	// Authorize adds credentials to a request (e.g. the Bearer header).
	Authorize func(*http.Request)
	Log       zerolog.Logger
	Limiter   Limiter // optional
	// ParseError reads a provider's error body; optional.
	ParseError func(status int, header http.Header, body []byte) ErrorInfo
	UserAgent  string
}

// Client performs requests for one provider.
type Client struct {
	cfg  Config
	base *url.URL
}

// New validates cfg and returns a Client. A nil HTTPClient gets one with
// DefaultTimeout.
func New(cfg Config) (*Client, error) {
	if cfg.Provider == "" {
		return nil, errors.New("restapi: empty provider name")
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%s: base URL %q is not an absolute URL", cfg.Provider, cfg.BaseURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: base URL must not carry credentials", cfg.Provider)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ringmesh-providers/1"
	}
	return &Client{cfg: cfg, base: u}, nil
}

// Request describes one API call.
type Request struct {
	Op     string // "list", "get", ...
	Method string
	Path   string // appended to the base URL path; segments must already be escaped
	Query  url.Values
	Body   any // JSON-encoded when not nil
}

// Response is a successful (2xx) answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req. A non-2xx answer, a transport failure or an unreadable body
// comes back as *providers.Error:
//
//   - failure to wait for the limiter or to dial (DNS, connection refused):
//     KindNotSent, the request never left;
//   - any other transport failure, a timeout, 408 and 5xx: KindTransient;
//   - 401/403 KindAuth, 404/410 KindNotFound, 409 KindConflict,
//     429 KindRateLimited (with Retry-After when sent), other 4xx KindInvalid;
//
// then ParseError may override the kind from the body's error code.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	if c.cfg.Limiter != nil {
		if err := c.cfg.Limiter.Wait(ctx); err != nil {
			return nil, c.fail(req.Op, providers.KindNotSent, 0, "", fmt.Errorf("client-side rate limiter: %w", err))
		}
	}
	u, err := url.Parse(c.base.String() + req.Path)
	if err != nil {
		return nil, c.fail(req.Op, providers.KindInvalid, 0, "", fmt.Errorf("building URL for path %q: %w", req.Path, err))
	}
	if req.Query != nil {
		u.RawQuery = req.Query.Encode()
	}
	var body io.Reader
	if req.Body != nil {
		b, err := json.Marshal(req.Body)
		if err != nil {
			return nil, c.fail(req.Op, providers.KindInvalid, 0, "", fmt.Errorf("encoding request body: %w", err))
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u.String(), body)
	if err != nil {
		return nil, c.fail(req.Op, providers.KindInvalid, 0, "", fmt.Errorf("building request: %w", err))
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", c.cfg.UserAgent)
	if req.Body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Authorize != nil {
		c.cfg.Authorize(hr)
	}

	start := time.Now()
	resp, err := c.cfg.HTTPClient.Do(hr)
	if err != nil {
		kind := TransportKind(err)
		c.cfg.Log.Debug().Str("provider", c.cfg.Provider).Str("op", req.Op).Str("method", req.Method).
			Str("path", req.Path).Dur("took", time.Since(start)).Str("kind", string(kind)).Err(err).Msg("provider request failed")
		return nil, c.fail(req.Op, kind, 0, "", scrub(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	c.cfg.Log.Debug().Str("provider", c.cfg.Provider).Str("op", req.Op).Str("method", req.Method).
		Str("path", req.Path).Int("status", resp.StatusCode).Dur("took", time.Since(start)).Msg("provider request")
	if err != nil {
		return nil, c.fail(req.Op, providers.KindTransient, resp.StatusCode, "", fmt.Errorf("reading response body: %w", scrub(err)))
	}
	if len(b) > MaxBody {
		return nil, c.fail(req.Op, providers.KindInvalid, resp.StatusCode, "", fmt.Errorf("response body larger than %d bytes", MaxBody))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
	}
	return nil, c.httpError(req.Op, resp, b)
}

func (c *Client) httpError(op string, resp *http.Response, body []byte) error {
	kind := StatusKind(resp.StatusCode)
	var info ErrorInfo
	if c.cfg.ParseError != nil {
		info = c.cfg.ParseError(resp.StatusCode, resp.Header, body)
	}
	if info.Kind != "" {
		kind = info.Kind
	}
	msg := info.Message
	if msg == "" {
		msg = Snippet(body)
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e := &providers.Error{Provider: c.cfg.Provider, Op: op, Kind: kind, Status: resp.StatusCode, Code: info.Code, Err: errors.New(msg)}
	if kind == providers.KindRateLimited || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = RetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

func (c *Client) fail(op string, kind providers.ErrorKind, status int, code string, err error) error {
	return &providers.Error{Provider: c.cfg.Provider, Op: op, Kind: kind, Status: status, Code: code, Err: err}
}

// Invalid returns a KindInvalid error for an answer that cannot be used.
func (c *Client) Invalid(op string, status int, format string, args ...any) error {
	return Invalid(c.cfg.Provider, op, status, format, args...)
}

// Decode unmarshals a successful answer into out; see Decode.
func (c *Client) Decode(op string, resp *Response, out any) error {
	return Decode(c.cfg.Provider, op, resp.Status, resp.Body, out)
}

// Invalid returns a KindInvalid *providers.Error.
func Invalid(provider, op string, status int, format string, args ...any) error {
	return &providers.Error{Provider: provider, Op: op, Kind: providers.KindInvalid, Status: status,
		Err: fmt.Errorf(format, args...)}
}

// Decode unmarshals body into out. Malformed JSON or a value of the wrong type
// gives a KindInvalid error naming the byte offset and, for a type mismatch,
// the field path (e.g. "instances.gpu_ram"); nothing is guessed.
func Decode(provider, op string, status int, body []byte, out any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return Invalid(provider, op, status, "empty response body, want JSON")
	}
	if err := json.Unmarshal(body, out); err != nil {
		return Invalid(provider, op, status, "decoding response body: %s", DescribeJSONError(err, body))
	}
	return nil
}

// DescribeJSONError renders a json error with its field and offset.
func DescribeJSONError(err error, body []byte) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("field %s: got JSON %s, want %s (byte offset %d)", field, te.Value, te.Type, te.Offset)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte offset %d of %d: %v", se.Offset, len(body), se)
	}
	return err.Error()
}

// StatusKind maps an HTTP status to an ErrorKind.
func StatusKind(status int) providers.ErrorKind {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return providers.KindAuth
	case status == http.StatusNotFound || status == http.StatusGone:
		return providers.KindNotFound
	case status == http.StatusConflict:
		return providers.KindConflict
	case status == http.StatusTooManyRequests:
		return providers.KindRateLimited
	case status == http.StatusRequestTimeout || status >= 500:
		return providers.KindTransient
	}
	return providers.KindInvalid
}

// TransportKind classifies an error of http.Client.Do: a dial or DNS failure
// means the request never left (KindNotSent); anything later, including a
// timeout while waiting for the answer, leaves the outcome unknown
// (KindTransient).
func TransportKind(err error) providers.ErrorKind {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return providers.KindNotSent
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return providers.KindNotSent
	}
	return providers.KindTransient
}

// RetryAfter parses a Retry-After header (delta seconds or HTTP date); 0 when
// absent or unparsable.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// Snippet returns the start of a body as one line, for error messages.
func Snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// scrub drops the URL from a *url.Error (the path is in our logs already and a
// query could one day carry a secret), keeping the underlying cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Bearer returns an Authorize func that sets "Authorization: Bearer key".
func Bearer(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}
