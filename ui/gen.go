package ui

// The front-end is built with the locked npm packages (npm ci) and
// esbuild; SOURCES.sum records what the committed assets were built from.
//go:generate sh -c "cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs"
//go:generate go run ../tools/websum -web web -assets assets
