package sdbx_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// The examples need a running server, so they are compiled but not run
// (they have no Output comment).

func Example() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{
		ServerURL: "http://127.0.0.1:3000",
		APIKey:    os.Getenv("SDBX_API_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	sb, err := client.CreateSandbox(ctx, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DeleteSandbox(context.WithoutCancel(ctx), sb.ID)

	res, err := client.RunCommand(ctx, sb.ID, sdbx.Command{Args: []string{"python3", "-c", "print(1)"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Stdout[0])
}

func ExampleClient_RunCommand() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{ServerURL: "http://127.0.0.1:3000", APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.RunCommand(ctx, "sb-k3j9x0q2mz",
		sdbx.Command{
			Command: "for i in 1 2 3; do echo $i; sleep 1; done; echo done >&2",
			Env:     map[string]string{"PYTHONUNBUFFERED": "1"},
			Timeout: 30 * time.Second,
		},
		sdbx.OnStdout(func(l sdbx.OutputLine) { fmt.Println("out:", l.Line) }),
		sdbx.OnStderr(func(l sdbx.OutputLine) { fmt.Println("err:", l.Line) }),
	)
	var te *sdbx.TimeoutError
	switch {
	case errors.As(err, &te):
		log.Fatal("the command ran too long: ", te.Message)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("exit code:", res.ExitCode)
}

func ExampleClient_CreateSandbox() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{ServerURL: "http://127.0.0.1:3000", APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	sb, err := client.CreateSandbox(ctx, sdbx.CreateSandboxOptions{
		TemplateID: "python-3-11",
		Name:       "data analysis",
		Expiry:     time.Hour,
		Env:        map[string]string{"DEBUG": "true"},
	})
	var rl *sdbx.RateLimitError
	switch {
	case errors.As(err, &rl):
		log.Fatalf("too many sandboxes; retry in %v", rl.RetryAfter)
	case errors.Is(err, sdbx.ErrInvalidArgument):
		log.Fatal("bad options: ", err)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(sb.ID, sb.Status, sb.ExpiresAt)
}

func ExampleError() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{ServerURL: "http://127.0.0.1:3000", APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.GetSandbox(ctx, "sb-does-not-exist")
	if errors.Is(err, sdbx.ErrNotFound) {
		fmt.Println("no such sandbox")
	}
	var e *sdbx.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.StatusCode, e.Message)
	}
}
