package meshctl

import (
	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/version"
)

// addVersion gives root a `version` command and a --version flag. Both print
// the build identity (version, commit, build date, Go version, platform)
// and contact nothing: they work with no coordinator and no NATS reachable.
func addVersion(root *cobra.Command, o *Options) {
	in := version.Get()
	root.Version = in.Version
	root.SetVersionTemplate(in.Line("meshctl") + "\n")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print meshctl's version, commit, build date and Go version (contacts nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.JSON {
				return version.FprintJSON(o.out)
			}
			return version.Fprint(o.out, "meshctl")
		},
	})
}
