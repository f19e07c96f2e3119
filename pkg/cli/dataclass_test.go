package cli

import (
	"flag"
	"strings"
	"testing"
)

func TestDataClassesFlag(t *testing.T) {
	var d DataClasses
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(&d, "data-class", "")
	if err := fs.Parse([]string{"--data-class", "checkpoints=*.pt,*.safetensors", "--data-class", "games=*.db"}); err != nil {
		t.Fatal(err)
	}
	if got := d.String(); got != "checkpoints=*.pt,*.safetensors;games=*.db" {
		t.Fatalf("parsed %q", got)
	}
	for _, bad := range []string{"checkpoints", "=*.pt", "Check=*.pt", "games=", "games=*.db,", "games=a b", "games=$(rm)", "games=x\ny"} {
		if err := d.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.ContainsAny(err.Error(), "\n") {
			t.Errorf("%q: the error carries a newline: %q", bad, err)
		}
	}
	// What FormatDataClass writes, Set reads back.
	var again DataClasses
	if err := again.Set(FormatDataClass("training", []string{"*.npz", "data/**/*.h5"})); err != nil || again.String() != "training=*.npz,data/**/*.h5" {
		t.Fatalf("round trip: %v %q", err, again.String())
	}
}
