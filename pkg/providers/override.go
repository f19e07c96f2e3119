package providers

import (
	"context"
	"strings"
)

type overrideKey struct{}

// WithOverride returns a context that carries an operator's explicit
// override of a provider's own refusal (Hetzner refuses to stop or
// terminate a protected voter without one). reason is required (an empty
// reason does not override) and is logged with the action; the caller
// should also write it to the audit stream. It lives here, not in an
// adapter, so that the action gate (pkg/fleet) sets it without linking the
// adapter's cloud SDK.
func WithOverride(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, overrideKey{}, strings.TrimSpace(reason))
}

// OverrideReason returns the override reason carried by ctx, if any.
func OverrideReason(ctx context.Context) (string, bool) {
	r, ok := ctx.Value(overrideKey{}).(string)
	return r, ok && r != ""
}
