// Package generate renders the JSON Schemas of schemas/ from the Go types
// in pkg/events, with the bounds their tags declare: jsonschema:"..." for
// numeric ranges and lengths, pattern:"<name>" for one of events.Patterns
// (on a slice, map or struct field: every string below it), maxLength:"N"
// and maxProperties:"N" for every string / object below a field.
// Run it with `go generate ./schemas`.
package generate

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/schemas"
)

// Generate renders the schema of every kind from the Go types, keyed by file name.
func Generate() (map[string][]byte, error) {
	out := map[string][]byte{}
	for kind, body := range events.Kinds() {
		r := &jsonschema.Reflector{
			AllowAdditionalProperties: true, // newer agents may add fields; required ones and types are enforced
			DoNotReference:            true,
		}
		bodySchema := r.Reflect(body)
		if err := applyBounds(bodySchema, reflect.TypeOf(body)); err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		nullablePointers(bodySchema, reflect.TypeOf(body))
		bodySchema.Version = ""
		bodySchema.ID = ""
		env := &jsonschema.Schema{
			Version:     "https://json-schema.org/draft/2020-12/schema",
			ID:          jsonschema.ID(schemas.BaseURL + schemas.FileName(kind)),
			Title:       "mesh.v1." + kind,
			Description: fmt.Sprintf("Envelope of a %s message (docs/ARCHITECTURE.md §3); body is events.%s.", kind, reflect.TypeOf(body).Name()),
			Type:        "object",
			Required:    []string{"schema", "id", "node", "ts", "body"},
			Properties:  jsonschema.NewProperties(),
		}
		env.Properties.Set("schema", &jsonschema.Schema{Const: "mesh.v1." + kind})
		env.Properties.Set("id", &jsonschema.Schema{Type: "string", MinLength: ptr(uint64(1)), MaxLength: ptr(uint64(256)), Pattern: events.Patterns["token"]})
		env.Properties.Set("node", &jsonschema.Schema{Type: "string", Pattern: events.Patterns["node"]})
		env.Properties.Set("ts", &jsonschema.Schema{Type: "string", Format: "date-time"})
		env.Properties.Set("body", bodySchema)
		b, err := json.MarshalIndent(env, "", "  ")
		if err != nil {
			return nil, err
		}
		out[schemas.FileName(kind)] = append(b, '\n')
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

// nullablePointers walks the Go type next to its schema and lets every
// pointer field accept null, which is how the agent reports an unmeasured
// value ("unknown", never 0).
func nullablePointers(s *jsonschema.Schema, t reflect.Type) {
	if s == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		nullablePointers(s.Items, t.Elem())
	case reflect.Struct:
		if s.Properties == nil {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			prop, ok := s.Properties.Get(name)
			if !ok {
				continue
			}
			nullablePointers(prop, f.Type)
			if f.Type.Kind() == reflect.Pointer {
				s.Properties.Set(name, &jsonschema.Schema{OneOf: []*jsonschema.Schema{prop, {Type: "null"}}})
			}
		}
	}
}

// applyBounds walks the Go type next to its schema and applies the
// pattern/maxLength/maxProperties tags.
func applyBounds(s *jsonschema.Schema, t reflect.Type) error {
	if s == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return applyBounds(s.Items, t.Elem())
	case reflect.Map:
		if s.AdditionalProperties != nil {
			return applyBounds(s.AdditionalProperties, t.Elem())
		}
	case reflect.Struct:
		if s.Properties == nil {
			return nil
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			prop, ok := s.Properties.Get(name)
			if !ok {
				continue
			}
			if err := applyBounds(prop, f.Type); err != nil {
				return err
			}
			if p := f.Tag.Get("pattern"); p != "" {
				re, ok := events.Patterns[p]
				if !ok {
					return fmt.Errorf("field %s: no pattern %q in events.Patterns", f.Name, p)
				}
				leaves(prop, func(l *jsonschema.Schema) {
					if l.Pattern == "" && len(l.Enum) == 0 {
						l.Pattern = re
					}
				})
			}
			if v := f.Tag.Get("maxLength"); v != "" {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return fmt.Errorf("field %s: maxLength %q: %w", f.Name, v, err)
				}
				leaves(prop, func(l *jsonschema.Schema) {
					if l.MaxLength == nil {
						l.MaxLength = &n
					}
				})
			}
			if v := f.Tag.Get("maxProperties"); v != "" {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return fmt.Errorf("field %s: maxProperties %q: %w", f.Name, v, err)
				}
				objects(prop, func(o *jsonschema.Schema) {
					if o.AdditionalProperties != nil && o.MaxProperties == nil {
						o.MaxProperties = &n
					}
				})
			}
		}
	}
	return nil
}

// leaves calls f on every string schema at or below s.
func leaves(s *jsonschema.Schema, f func(*jsonschema.Schema)) {
	walk(s, func(x *jsonschema.Schema) {
		if x.Type == "string" {
			f(x)
		}
	})
}

// objects calls f on every object schema at or below s.
func objects(s *jsonschema.Schema, f func(*jsonschema.Schema)) {
	walk(s, func(x *jsonschema.Schema) {
		if x.Type == "object" {
			f(x)
		}
	})
}

func walk(s *jsonschema.Schema, f func(*jsonschema.Schema)) {
	if s == nil {
		return
	}
	f(s)
	walk(s.Items, f)
	walk(s.AdditionalProperties, f)
	for _, o := range s.OneOf {
		walk(o, f)
	}
	if s.Properties != nil {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			walk(p.Value, f)
		}
	}
}
