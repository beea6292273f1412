package ui

import "embed"

// assets are the built front-end (see ui/web and make generate).
//
//go:embed assets
var assets embed.FS
