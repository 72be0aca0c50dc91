package sdbx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
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

func ExampleClient_RunCode() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{ServerURL: "http://127.0.0.1:3000", APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.RunCode(ctx, "sb-k3j9x0q2mz",
		"import pandas as pd\nprint('Loading data...')\ndf = pd.read_csv('data.csv')\ndf.describe()",
		sdbx.Timeout(30*time.Second),
		sdbx.Env(map[string]string{"CUSTOM_VAR": "value"}),
		sdbx.OnStdout(func(l sdbx.OutputLine) { fmt.Println("Output:", l.Line) }),
		sdbx.OnResult(func(r sdbx.Result) { fmt.Println("Result:", r.Text) }),
		sdbx.OnError(func(e sdbx.ExecutionError) { fmt.Println("Execution error:", e.Name) }),
	)
	var te *sdbx.TimeoutError
	switch {
	case errors.As(err, &te):
		log.Fatal(te.Message) // says whether the context's state was kept
	case err != nil:
		log.Fatal(err)
	}
	if e := res.Execution.Error; e != nil {
		fmt.Println(e.Traceback)
	}
	fmt.Println(res.Execution.Logs.Stdout, res.Metadata.ContextID)
}

func ExampleClient_CreateContext() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{ServerURL: "http://127.0.0.1:3000", APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	cc, err := client.CreateContext(ctx, "sb-k3j9x0q2mz", sdbx.ContextOptions{
		Language: sdbx.LanguagePython,
		Cwd:      "/workspace/project",
		Env:      map[string]string{"STAGE": "test"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DeleteContext(context.WithoutCancel(ctx), cc.ID)
	if _, err := client.RunCode(ctx, cc.SandboxID, "counter = 1", sdbx.InContext(cc.ID)); err != nil {
		log.Fatal(err)
	}
	res, err := client.RunCode(ctx, cc.SandboxID, "counter + 1", sdbx.InContext(cc.ID))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Execution.Results[0].Text) // 2
}

func ExampleClient_RunBatch() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{ServerURL: "http://127.0.0.1:3000", APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	results, err := client.RunBatch(ctx, "sb-k3j9x0q2mz", []sdbx.BatchJob{
		{ID: "square", Code: "print(7 * 7)"},
		{ID: "urgent", Code: "print('first')", Priority: 10},
		{ID: "fails", Code: "1/0", Timeout: 10 * time.Second},
	}, sdbx.Concurrency(2), sdbx.OnStdout(func(l sdbx.OutputLine) { fmt.Println(l.JobID+":", l.Line) }))
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results { // in job order
		fmt.Println(r.JobID, r.Success, r.Error, r.Duration())
	}
}

func ExampleClient_WriteFile() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{ServerURL: "http://127.0.0.1:3000", APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.Open("data.csv")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	// Streamed: the file is never held in memory whole.
	entry, err := client.WriteFile(ctx, "sb-k3j9x0q2mz", "/workspace/input/data.csv", f, sdbx.CreateParents())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(entry.Path, entry.Size)
}

func ExampleClient_ReadFile() {
	ctx := context.Background()
	client, err := sdbx.New(sdbx.Config{ServerURL: "http://127.0.0.1:3000", APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	r, err := client.ReadFile(ctx, "sb-k3j9x0q2mz", "/workspace/results.parquet")
	if errors.Is(err, sdbx.ErrNotFound) {
		log.Fatal("no results yet")
	} else if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	out, err := os.Create(r.Name)
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, r); err != nil { // a broken transfer is an error, never a short file
		log.Fatal(err)
	}
}
