package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// DecodeEnrollRequest bounds, decodes and validates one enrollment request
// (mesh.v1.enroll, sent under the shared bootstrap credential, so anyone
// holding that file can send anything): at most
// events.MaxEnrollRequestBytes, one JSON object with only the known fields
// (unknown ones, a second value or trailing bytes are refused) and every
// field matching its pattern (events.EnrollRequest.Validate). The error is
// an *Error whose reason names the field, never the token's value.
func DecodeEnrollRequest(data []byte) (events.EnrollRequest, error) {
	if len(data) > events.MaxEnrollRequestBytes {
		return events.EnrollRequest{}, refuse("enrollment request of %d bytes (at most %d)", len(data), events.MaxEnrollRequestBytes)
	}
	var r events.EnrollRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return events.EnrollRequest{}, refuse("enrollment request: not a JSON request object: %v", clipErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return events.EnrollRequest{}, refuse("enrollment request: bytes after the JSON object")
	}
	if err := r.Validate(); err != nil {
		return events.EnrollRequest{}, refuse("enrollment request: %v", err)
	}
	return r, nil
}

// clipErr shortens a decoder error, which may quote the input.
func clipErr(err error) string { return clip(err.Error()) }
