package template

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
)

// noEgress explains failures of steps that download when build sandboxes
// have loopback-only networking (Config.BuildNetwork none).
const noEgress = "build sandboxes have no network access on this server (loopback only), " +
	"so packages that are not already in the base cannot be downloaded; see docs/templates.md"

// builder runs one custom template's build.
type builder struct {
	c   *Catalog
	id  string
	t   Template // the request, as recorded
	log *buildLog
	// pinned are the layers this build uses (released at its end);
	// created are the layers it made or pulled (candidates for removal
	// when it fails).
	pinned, created []string
}

// buildResult is what a successful build changes of its template.
type buildResult struct {
	layers  []Layer
	env     map[string]string
	version string
}

func (b *builder) logf(format string, args ...any) {
	b.log.add(time.Now().UTC().Format("15:04:05.000 ") + fmt.Sprintf(format, args...))
}

func (b *builder) pin(digest string) {
	b.c.pin(digest)
	b.pinned = append(b.pinned, digest)
}

// run pulls or takes the base, runs the steps in a build sandbox and
// returns the template's layers.
func (b *builder) run(ctx context.Context, base *Template, ref name.Reference) (buildResult, error) {
	var (
		layers []Layer
		env    = map[string]string{}
	)
	if ref != nil {
		imgLayers, icfg, err := b.c.pullImage(ctx, ref, b)
		if err != nil {
			return buildResult{}, err
		}
		layers, env = imgLayers, icfg.Env
	} else {
		b.logf("base: built-in %s", base.ID)
		// A built-in fetched on first use (nodejs-18) is fetched now.
		bt, release, err := b.c.Acquire(ctx, "", base.ID)
		if err != nil {
			return buildResult{}, fmt.Errorf("base %s: %v", base.ID, err)
		}
		release()
		for _, l := range bt.Layers {
			if l.Source != SourceHost {
				b.pin(l.Source)
			}
		}
		layers, env = bt.Layers, copyMap(bt.DefaultEnv)
	}
	for k, v := range b.t.DefaultEnv {
		env[k] = v
	}
	res := buildResult{layers: layers, env: env, version: b.t.Version}
	drv, ok := b.c.cfg.Driver.(UpperDirReader)
	if b.c.cfg.Driver == nil || !ok {
		if len(b.t.Dependencies) > 0 || b.t.InstallCommand != "" {
			return buildResult{}, errors.New("this server cannot run build steps (its runtime cannot export a sandbox's changes)")
		}
		return res, nil
	}
	return b.inSandbox(ctx, drv, res)
}

// made records a layer this build created.
func (b *builder) made(digest string) { b.created = append(b.created, digest) }

// inSandbox starts a build sandbox on the base, runs the steps, probes the
// interpreter's version and turns the sandbox's writes into layers.
func (b *builder) inSandbox(ctx context.Context, drv UpperDirReader, res buildResult) (buildResult, error) {
	c := b.c
	buildLayers := res.layers
	hasRoot := false
	for _, l := range buildLayers {
		hasRoot = hasRoot || l.Target == "/"
	}
	if !hasRoot {
		// A root overlay catches writes outside /usr and /etc.
		buildLayers = append(append([]Layer(nil), buildLayers...), Layer{Target: "/", Source: c.skeleton})
	}
	overlays := c.overlays(buildLayers)
	if err := checkMountData(overlays); err != nil {
		return buildResult{}, err
	}
	sid := "build-" + b.id
	b.logf("starting build sandbox")
	if err := c.cfg.Driver.Create(ctx, runtime.Spec{ID: sid, Overlays: overlays, Resources: c.cfg.BuildResources, Network: c.cfg.BuildNetwork}); err != nil {
		return buildResult{}, fmt.Errorf("start build sandbox: %v", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := c.cfg.Driver.Delete(dctx, sid); err != nil {
			c.log.Error("delete build sandbox", "sandbox_id", sid, "err", err)
		}
	}()
	client := agentclient.New(func(ctx context.Context) (net.Conn, error) { return c.cfg.Driver.Dial(ctx, sid) })
	env := map[string]string{"PATH": defaultPath, "HOME": "/root", "LANG": "C.UTF-8", "HOSTNAME": sid}
	for k, v := range res.env {
		env[k] = v
	}
	if err := b.steps(ctx, client, env, &res); err != nil {
		return buildResult{}, err
	}
	res.version = b.probeVersion(ctx, client, env)
	if err := c.cfg.Driver.Stop(ctx, sid); err != nil {
		return buildResult{}, fmt.Errorf("stop build sandbox: %v", err)
	}
	uppers, err := drv.UpperDirs(ctx, sid)
	if err != nil || len(uppers) != len(overlays) {
		return buildResult{}, fmt.Errorf("read the build sandbox's changes: %v", err)
	}
	targets := make([]string, len(overlays))
	for i, o := range overlays {
		targets[i] = o.Target
	}
	var made []Layer
	for i, o := range overlays {
		if o.Target == "/" {
			if err := pruneRootUpper(uppers[i], targets); err != nil {
				return buildResult{}, fmt.Errorf("read the build sandbox's changes: %v", err)
			}
		}
		empty, err := emptyDir(uppers[i])
		if err != nil {
			return buildResult{}, fmt.Errorf("read the build sandbox's changes: %v", err)
		}
		if empty {
			continue
		}
		digest, created, err := c.layers.commit(uppers[i])
		if err != nil {
			return buildResult{}, err
		}
		b.pin(digest)
		if created {
			b.created = append(b.created, digest)
		}
		b.logf("layer %s: %s", o.Target, short(digest))
		made = append(made, Layer{Target: o.Target, Source: digest})
	}
	if len(made) == 0 {
		b.logf("the steps changed no file")
		return res, nil
	}
	base := res.layers
	for _, l := range made {
		if l.Target == "/" && !hasRoot {
			base = append(append([]Layer(nil), base...), Layer{Target: "/", Source: c.skeleton})
		}
	}
	res.layers = append(made, base...)
	return res, nil
}

// stepError is the error of a failed download step: without egress it
// says why downloads fail.
func (b *builder) stepError(err error) error {
	if n := b.c.cfg.BuildNetwork.Egress; n == "" || n == runtime.EgressNone {
		return fmt.Errorf("%v; %s", err, noEgress)
	}
	return err
}

// steps installs the dependencies and runs installCommand.
func (b *builder) steps(ctx context.Context, client *agentclient.Client, env map[string]string, res *buildResult) error {
	var apt, lang []string
	for _, d := range b.t.Dependencies {
		if p, ok := strings.CutPrefix(d, aptPrefix); ok {
			apt = append(apt, p)
		} else {
			lang = append(lang, d)
		}
	}
	if len(apt) > 0 {
		aptEnv := withEnv(env, "DEBIAN_FRONTEND", "noninteractive")
		if err := b.exec(ctx, client, "dependencies", aptEnv, "apt-get", "update"); err != nil {
			return b.stepError(err)
		}
		args := append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, apt...)
		if err := b.exec(ctx, client, "dependencies", aptEnv, args...); err != nil {
			return b.stepError(err)
		}
	}
	if len(lang) > 0 {
		var args []string
		stepEnv := env
		if b.t.Language == "python" {
			args = append([]string{"python3", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--retries", "0", "--timeout", "15"}, lang...)
			stepEnv = withEnv(withEnv(env, "PIP_BREAK_SYSTEM_PACKAGES", "1"), "PIP_ROOT_USER_ACTION", "ignore")
		} else {
			args = append([]string{"npm", "install", "--global", "--no-fund", "--no-audit", "--fetch-retries=0", "--fetch-timeout=15000"}, lang...)
		}
		if err := b.exec(ctx, client, "dependencies", stepEnv, args...); err != nil {
			return b.stepError(err)
		}
		if b.t.Language == "javascript" && res.env["NODE_PATH"] == "" {
			// Global modules are found by require() from anywhere.
			if out, err := b.output(ctx, client, env, "npm", "root", "--global"); err == nil && strings.HasPrefix(out, "/") {
				res.env["NODE_PATH"] = out
			}
		}
	}
	if b.t.InstallCommand != "" {
		if err := b.exec(ctx, client, "installCommand", env, "/bin/sh", "-c", b.t.InstallCommand); err != nil {
			return err
		}
	}
	return nil
}

func withEnv(env map[string]string, k, v string) map[string]string {
	out := copyMap(env)
	out[k] = v
	return out
}

// exec runs one step, logging its output; a non-zero exit is an error
// naming the step and quoting its last lines.
func (b *builder) exec(ctx context.Context, client *agentclient.Client, step string, env map[string]string, args ...string) error {
	b.logf("%s: $ %s", step, strings.Join(args, " "))
	var tail []string
	timeout := time.Until(deadlineOf(ctx))
	ev, err := client.Exec(ctx, agentproto.ExecRequest{Args: args, Env: env, Cwd: "/workspace", TimeoutMs: timeout.Milliseconds()},
		func(ev agentproto.Event) {
			if ev.Type != agentproto.EventStdout && ev.Type != agentproto.EventStderr {
				return
			}
			b.log.add(ev.Data)
			if strings.TrimSpace(ev.Data) != "" {
				tail = append(tail, ev.Data)
				if len(tail) > 3 {
					tail = tail[1:]
				}
			}
		})
	switch {
	case err != nil && errors.Is(err, errdefs.ErrNotFound):
		return fmt.Errorf("%s: %s: command not found in the template", step, args[0])
	case err != nil:
		return fmt.Errorf("%s: %v", step, err)
	case ev.TimedOut:
		return fmt.Errorf("%s: timed out", step)
	case ev.ExitCode != 0:
		msg := fmt.Sprintf("%s exited with code %d", step, ev.ExitCode)
		if step == "dependencies" {
			msg = fmt.Sprintf("dependencies: `%s` exited with code %d", strings.Join(args, " "), ev.ExitCode)
		}
		if len(tail) > 0 {
			msg += ": " + strings.Join(tail, " | ")
		}
		return errors.New(msg)
	}
	return nil
}

// output runs a command and returns its trimmed standard output.
func (b *builder) output(ctx context.Context, client *agentclient.Client, env map[string]string, args ...string) (string, error) {
	var out strings.Builder
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ev, err := client.Exec(pctx, agentproto.ExecRequest{Args: args, Env: env, Cwd: "/workspace", TimeoutMs: 30_000},
		func(ev agentproto.Event) {
			if ev.Type == agentproto.EventStdout {
				out.WriteString(ev.Data + "\n")
			}
		})
	if err != nil {
		return "", err
	}
	if ev.ExitCode != 0 {
		return "", fmt.Errorf("%s exited with code %d", args[0], ev.ExitCode)
	}
	return strings.TrimSpace(out.String()), nil
}

var (
	pythonVersion = regexp.MustCompile(`Python (\S+)`)
	nodeVersion   = regexp.MustCompile(`^v(\S+)`)
)

// probeVersion runs the language's interpreter in the build sandbox and
// returns its version (the requested one when there is no interpreter).
func (b *builder) probeVersion(ctx context.Context, client *agentclient.Client, env map[string]string) string {
	exe, re := "python3", pythonVersion
	if b.t.Language == "javascript" {
		exe, re = "node", nodeVersion
	}
	out, err := b.output(ctx, client, env, exe, "--version")
	if m := re.FindStringSubmatch(out); err == nil && m != nil {
		b.logf("%s --version: %s", exe, m[1])
		return m[1]
	}
	b.logf("no working %s in the template (%v): code contexts will not start; commands still run", exe, err)
	return b.t.Version
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Hour)
}

// checkMountData refuses overlays whose mount options would not fit in a
// page (overlayfs's limit): images with very many layers.
func checkMountData(overlays []runtime.Overlay) error {
	for _, o := range overlays {
		n := len("lowerdir=,upperdir=,workdir=") + 2*256
		for _, l := range o.Lower {
			n += len(l) + 1
		}
		if n > 4000 {
			return fmt.Errorf("the template has too many layers at %s (%d) for one overlay mount; use an image with fewer layers", o.Target, len(o.Lower))
		}
	}
	return nil
}
