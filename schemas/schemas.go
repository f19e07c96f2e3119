// Package schemas holds the JSON Schema of every bus message (schemas/*.json,
// one file per message kind, each describing the whole envelope) and
// validates raw messages against them.
//
// The files are generated from the Go types in pkg/events (by package
// schemas/generate, so that this package needs only the validator):
//
//	go generate ./schemas
//
// generate.TestSchemasMatchTypes fails when the committed files drift from the types.
package schemas

//go:generate go run ./gen

import (
	"bytes"
	"embed"
	"fmt"
	"sort"
	"strings"

	jsv "github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed *.json
var files embed.FS

// BaseURL is the $id prefix of every schema.
const BaseURL = "https://ringmesh.dev/schemas/"

// FileName returns the schema file name of a kind: "mesh.v1.<kind>.json".
func FileName(kind string) string { return "mesh.v1." + kind + ".json" }

// Committed returns the schema files as committed, keyed by file name.
func Committed() (map[string][]byte, error) {
	ents, err := files.ReadDir(".")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		out[e.Name()] = b
	}
	return out, nil
}

// Validator checks raw messages against the committed schemas.
type Validator struct {
	byKind map[string]*jsv.Schema
}

// NewValidator compiles every committed schema.
func NewValidator() (*Validator, error) {
	c := jsv.NewCompiler()
	committed, err := Committed()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(committed))
	for name, b := range committed {
		doc, err := jsv.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		if err := c.AddResource(BaseURL+name, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		names = append(names, name)
	}
	c.AssertFormat()
	sort.Strings(names)
	v := &Validator{byKind: map[string]*jsv.Schema{}}
	for _, name := range names {
		s, err := c.Compile(BaseURL + name)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", name, err)
		}
		kind := strings.TrimSuffix(strings.TrimPrefix(name, "mesh.v1."), ".json")
		v.byKind[kind] = s
	}
	return v, nil
}

// Validate checks raw against the schema of kind ("hello", "heartbeat", ...).
// The error names the failing location and reason.
func (v *Validator) Validate(kind string, raw []byte) error {
	s, ok := v.byKind[kind]
	if !ok {
		return fmt.Errorf("no schema for message kind %q", kind)
	}
	inst, err := jsv.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(inst); err != nil {
		var ve *jsv.ValidationError
		if ok := asValidation(err, &ve); ok {
			return fmt.Errorf("%s", flatten(ve))
		}
		return err
	}
	return nil
}

func asValidation(err error, out **jsv.ValidationError) bool {
	ve, ok := err.(*jsv.ValidationError)
	if ok {
		*out = ve
	}
	return ok
}

// flatten renders the deepest causes as "at /body/x: reason; ...".
func flatten(ve *jsv.ValidationError) string {
	var parts []string
	var walk func(e *jsv.ValidationError)
	walk = func(e *jsv.ValidationError) {
		if len(e.Causes) == 0 {
			parts = append(parts, fmt.Sprintf("at /%s: %s", strings.Join(e.InstanceLocation, "/"), e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(parts) > 5 {
		parts = append(parts[:5], fmt.Sprintf("and %d more", len(parts)-5))
	}
	return strings.Join(parts, "; ")
}

var printer = message.NewPrinter(language.English)
