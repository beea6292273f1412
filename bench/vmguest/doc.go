// Package vmguest is the guest side of `make bench`'s vm part: a test,
// built only with the benchvm tag, that tools/vmtest boots on a test kernel
// and that runs `vigil-bench run -guest` there. The harness (bench/harness,
// runVM) builds it, boots it and folds the guest's report into its own.
package vmguest
