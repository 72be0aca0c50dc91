package main

import "github.com/sdbx/sdbx/internal/runtime/linux"

// initVerb is the hidden verb the linux runtime starts a sandbox's init with.
const initVerb = linux.InitVerb

// initMain runs a sandbox's init: it sets the sandbox up and executes the
// agent, returning only on failure.
func initMain(args []string) int { return linux.InitMain(args) }
