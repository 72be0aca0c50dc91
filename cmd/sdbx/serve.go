package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sdbx/sdbx/internal/agent/kernel"
	"github.com/sdbx/sdbx/internal/api"
	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/config"
	"github.com/sdbx/sdbx/internal/limit"
	"github.com/sdbx/sdbx/internal/network"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/runtime/linux"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/store/sqlite"
	"github.com/sdbx/sdbx/internal/template"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func serveMain(args []string) int {
	cfg, err := config.Load(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sdbx serve: %v\n", err)
		return 2
	}
	log := newLogger(cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("server stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// serve is the one wiring point: it picks the store, runtime and
// transports, and runs them until ctx is cancelled.
func serve(ctx context.Context, cfg config.Server, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("sdbx serve needs root to create isolated sandboxes (namespaces, cgroups, overlay mounts)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "sdbx.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	generated, err := auth.EnsureAdmin(ctx, st, cfg.APIKey)
	if err != nil {
		return fmt.Errorf("admin key: %w", err)
	}
	if generated != "" {
		fmt.Fprintf(os.Stderr, "\n  Admin API key (shown once; only its hash is stored):\n\n    %s\n\n  export SDBX_API_KEY=%s\n\n", generated, generated)
	}

	nm, err := network.New(ctx, network.Config{
		Tag:    network.Tag(cfg.DataDir),
		CIDR:   netip.MustParsePrefix(cfg.NetworkCIDR), // checked by Validate
		Logger: log,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := nm.Close(); err != nil {
			log.Error("close network", "err", err)
		}
	}()
	driver, err := linux.New(linux.Config{
		StateDir:     filepath.Join(cfg.DataDir, "sandboxes"),
		CgroupParent: "sdbx-" + network.Tag(cfg.DataDir),
		Logger:       log,
		Network:      nm,
		Disk:         linux.DiskPool{Image: filepath.Join(cfg.DataDir, "sandboxes.img"), SizeMB: cfg.DiskPoolGB << 10},
	})
	if err != nil {
		return fmt.Errorf("linux runtime: %w", err)
	}
	defer func() {
		if err := driver.Close(); err != nil {
			log.Error("close the linux runtime", "err", err)
		}
	}()
	catalog, err := template.NewCatalog(ctx, template.Config{
		DataDir:        cfg.DataDir,
		Log:            log,
		Store:          st,
		Driver:         driver,
		BuildResources: runtime.Resources{CPU: cfg.CPU, MemoryMB: cfg.MemoryMB, PIDs: cfg.PIDs, DiskMB: max(cfg.MaxDiskMB, cfg.DiskMB)},
		BuildNetwork:   runtime.Network{Egress: runtime.EgressInternet},
		RegistryMirror: cfg.RegistryMirror,
	})
	if err != nil {
		return err
	}
	defer catalog.Close()
	if err := warmPoolTemplates(ctx, catalog, cfg.Pool, log); err != nil {
		return err
	}
	// Python contexts start faster from bytecode compiled once here: the
	// built-in templates run the host's interpreter.
	pyc, err := kernel.CompilePythonDriver(ctx, "/usr/bin/python3")
	if err != nil {
		log.Info("python driver not precompiled; agents compile it at each start", "err", err)
	}
	svc := sandbox.New(sandbox.Config{
		DefaultExpiry: cfg.DefaultExpiry,
		Resources:     runtime.Resources{CPU: cfg.CPU, MemoryMB: cfg.MemoryMB, PIDs: cfg.PIDs, DiskMB: cfg.DiskMB},
		MaxResources:  runtime.Resources{CPU: cfg.MaxCPU, MemoryMB: cfg.MaxMemoryMB, PIDs: cfg.MaxPIDs, DiskMB: cfg.MaxDiskMB},
		Pool:          cfg.Pool,
		Network:       runtime.Network{Egress: cfg.NetworkDefault},
		Caps: sandbox.Caps{
			Sandboxes: cfg.MaxSandboxesPerKey, Executions: cfg.MaxExecutionsPerKey,
			// The admin key is the operator's: caps are for the keys it hands out.
			Exempt: []string{auth.DefaultTenant},
		},
		PythonBytecode: pyc,
	}, st, driver, catalog, log)

	keys := auth.NewKeys(st)
	handler, err := api.NewHandlerWithOptions(svc, keys, log, version, api.Options{
		Rate: limit.New(cfg.RateLimit, cfg.RateBurst),
		Keys: keys,
	})
	if err != nil {
		return err
	}
	keys.OnRevoke(func(k auth.Key) { handler.DisconnectKey(k.ID) })
	if err := svc.Recover(ctx); err != nil {
		return fmt.Errorf("recover sandboxes: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	if cfg.DebugAddr != "" {
		dbg := &http.Server{Addr: cfg.DebugAddr, Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			log.Info("pprof listening", "addr", cfg.DebugAddr)
			if err := dbg.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("debug listener: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return dbg.Close()
		})
	}
	g.Go(func() error { return svc.Run(gctx) })
	g.Go(func() error { return nm.Run(gctx) })
	g.Go(func() error {
		log.Info("sdbx listening", "addr", ln.Addr().String(), "data_dir", cfg.DataDir, "version", version)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.ShutdownTimeout)
		defer cancel()
		svc.Shutdown()
		handler.Close()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}

// warmPoolTemplates checks the pool's template ids and fetches the
// first-use layers of those that need them (nodejs-18 on a host without
// Node.js 18), so that the pool never starts sandboxes without layers.
func warmPoolTemplates(ctx context.Context, catalog *template.Catalog, pool map[string]int, log *slog.Logger) error {
	for id, n := range pool {
		t, err := catalog.Get(id)
		if err != nil {
			return fmt.Errorf("pool: %w", err)
		}
		if n == 0 || t.Status == template.StatusReady {
			continue
		}
		log.Info("fetching the layers of a pooled template", "template", id)
		wctx, cancel := context.WithTimeout(ctx, sandbox.TemplateWait)
		_, release, err := catalog.Acquire(wctx, "", id)
		cancel()
		if err != nil {
			return fmt.Errorf("pool: %w", err)
		}
		release()
	}
	return nil
}

// debugHandler serves Go's profiles under /debug/pprof/.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
