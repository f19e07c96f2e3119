package gossip

import "github.com/ringmesh/ringmesh/pkg/gossip/gossipview"

// MetaMaxSize is the largest encoded node metadata memberlist carries, in
// bytes (gossipview.MetaMaxSize, equal to memberlist.MetaMaxSize).
const MetaMaxSize = gossipview.MetaMaxSize

// MetaVersion is the metadata format version written by [Meta.Encode]
// (gossipview.MetaVersion).
const MetaVersion = gossipview.MetaVersion

// Meta is the small, versioned node metadata gossiped with every member
// (gossipview.Meta, which documents the wire format).
type Meta = gossipview.Meta

// ErrMetaTooLarge is wrapped by the error [Meta.Encode] returns when the
// encoded metadata exceeds [MetaMaxSize].
var ErrMetaTooLarge = gossipview.ErrMetaTooLarge

// DecodeMeta parses node metadata written by [Meta.Encode] of this or a
// newer version: gossipview.DecodeMeta.
func DecodeMeta(b []byte) (Meta, error) { return gossipview.DecodeMeta(b) }
