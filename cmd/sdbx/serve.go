package main

// serveMain is a placeholder until its owner lands it.
func serveMain(args []string) int { return 2 }
