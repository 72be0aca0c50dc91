// Command sdbx is the sdbx server, the in-sandbox agent and the CLI in one
// binary:
//
//	sdbx serve                 run the server
//	sdbx agent                 run the agent (started by the runtime inside a sandbox)
//	sdbx sandbox|exec|run|code|files|key ...
//	                           CLI verbs, talking to a server through the Go SDK
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run dispatches a verb and returns the process exit code.
func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "serve":
		return serveMain(rest)
	case "agent":
		return agentMain(rest)
	case initVerb:
		return initMain(rest)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	}
	if code, ok := cliMain(verb, rest); ok {
		return code
	}
	fmt.Fprintf(os.Stderr, "sdbx: unknown command %q\n\n%s", verb, usage)
	return 2
}

const usage = `Usage: sdbx <command> [flags]

Server:
  serve                         run the sdbx server (see sdbx serve -h)

Sandboxes (talk to a server; --url/SDBX_URL, --api-key/SDBX_API_KEY):
  sandbox create [--template ID] [--name N] [--env K=V]...   print the new sandbox id
  sandbox ls                    list sandboxes
  sandbox status ID             show one sandbox
  sandbox rm ID                 delete a sandbox
  exec ID -- CMD [ARGS...]      run a command, stream its output, exit with its code
  run --template ID -- CMD [ARGS...]   create a sandbox, run a command, delete it
  shell ID [-- CMD [ARGS...]]   interactive terminal (bash -i) in a sandbox, exit with its code

Code and files:
  code ID (CODE | -f FILE | -)  run code in a persistent interpreter, stream its output
  files ls ID [DIR]             list a directory (default /workspace)
  files cat ID PATH             print a file
  files put ID LOCAL PATH       upload a local file (- for stdin)
  files get ID PATH [LOCAL]     download a file (to stdout without LOCAL)
  files rm [-r] ID PATH...      delete files or directories

Templates:
  template ls [--json]          list templates (built-ins and your own)
  template build --all | ID...  pre-build built-in templates locally (as root), with progress

API keys (admin key):
  key create --name N           create a key (own tenant); print its secret
  key ls                        list keys
  key rm KEY|NAME               revoke a key

Internal:
  agent                         the in-sandbox agent (started by the runtime)

Every verb takes -h. Flags, environment and exit codes: docs/cli.md.
`
