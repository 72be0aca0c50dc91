package main

// cliMain is a placeholder until the CLI lands.
func cliMain(verb string, args []string) (int, bool) { return 0, false }
