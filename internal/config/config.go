// Package config is the typed configuration of `sdbx serve`: embedded
// defaults, overridden by a JSON config file, then by SDBX_* environment
// variables, then by flags. It is the only package that reads the
// environment.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Server is the configuration of `sdbx serve`.
type Server struct {
	// Addr is the listen address (default ":3000").
	Addr string `json:"addr"`
	// DataDir holds the SQLite database and sandbox state.
	DataDir string `json:"dataDir"`
	// APIKey, when set, is the admin API key (else one is generated on
	// first start and shown once). Only its hash is stored.
	APIKey string `json:"apiKey"`
	// DefaultExpiry is the lifetime of sandboxes created without
	// expiryTime; 0 means they never expire.
	DefaultExpiry time.Duration `json:"defaultExpiry"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"logLevel"`
	// CPU, MemoryMB and PIDs limit every sandbox.
	CPU      float64 `json:"cpu"`
	MemoryMB int64   `json:"memoryMb"`
	PIDs     int64   `json:"pids"`
	// MaxCPU, MaxMemoryMB and MaxPIDs bound what a create request may ask
	// for (resources); 0 means the default is also the maximum.
	MaxCPU      float64 `json:"maxCpu"`
	MaxMemoryMB int64   `json:"maxMemoryMb"`
	MaxPIDs     int64   `json:"maxPids"`
	// DiskMB is the disk quota of every sandbox's writable files (its
	// overlay upper dirs, /workspace and /root) and MaxDiskMB the most a
	// create request may ask for. DiskPoolGB sizes the sparse image in the
	// data directory that holds those files (0 = half the free space of
	// the data directory's file system, at most 256 GiB, when the image
	// is made). Quotas need root and btrfs; without them diskMb is
	// refused and the server still starts.
	DiskMB     int64 `json:"diskMb"`
	MaxDiskMB  int64 `json:"maxDiskMb"`
	DiskPoolGB int64 `json:"diskPoolGb"`
	// MaxSandboxesPerKey and MaxExecutionsPerKey cap, per API key (the
	// admin key is exempt), the sandboxes that exist at once and the code
	// runs, commands and batches that run at once; 0 = no cap.
	MaxSandboxesPerKey  int `json:"maxSandboxesPerKey"`
	MaxExecutionsPerKey int `json:"maxExecutionsPerKey"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration `json:"shutdownTimeout"`
	// Pool is the warm pool: pre-created sandboxes kept ready per template
	// id. Written "python-3-11=2,nodejs-18=1" in flags and environment.
	Pool map[string]int `json:"pool"`
	// RateLimit is requests per second allowed per API key (0 = off), with
	// bursts of RateBurst.
	RateLimit float64 `json:"rateLimit"`
	RateBurst int     `json:"rateBurst"`
	// DebugAddr, when set, serves Go's pprof profiles on this address
	// (keep it on loopback).
	DebugAddr string `json:"debugAddr"`
	// RegistryMirror is the registry that dockerImage references without
	// a registry ("python:3.11-slim") are pulled from, as host[:port]
	// (default: Docker Hub).
	RegistryMirror string `json:"registryMirror"`
	// NetworkDefault is the egress of sandboxes created without a network
	// policy (and of the warm pool): "internet" or "none".
	NetworkDefault string `json:"networkDefault"`
	// NetworkCIDR is the IPv4 pool the sandboxes' /30 links take their
	// addresses from.
	NetworkCIDR string `json:"networkCidr"`
}

// Defaults returns the embedded defaults.
func Defaults() Server {
	return Server{
		Addr:        ":3000",
		DataDir:     "/var/lib/sdbx",
		LogLevel:    "info",
		CPU:         1,
		MemoryMB:    1024,
		PIDs:        512,
		MaxCPU:      2,
		MaxMemoryMB: 8192,
		MaxPIDs:     4096,
		DiskMB:      2048,
		MaxDiskMB:   16384,
		// Per-key caps.
		MaxSandboxesPerKey:  100,
		MaxExecutionsPerKey: 32,
		ShutdownTimeout:     10 * time.Second,
		Pool:                map[string]int{"python-3-11": 2},
		RateBurst:           100,
		NetworkDefault:      "internet",
		NetworkCIDR:         "10.213.0.0/16",
	}
}

// maxPool bounds one template's warm pool.
const maxPool = 256

// ParsePool parses "id=n,id=n" ("" and "none" mean no pool).
func ParsePool(v string) (map[string]int, error) {
	pool := map[string]int{}
	if v == "" || v == "none" {
		return pool, nil
	}
	for _, part := range strings.Split(v, ",") {
		id, n, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("%q: want TEMPLATE=SIZE", part)
		}
		size, err := strconv.Atoi(n)
		if err != nil {
			return nil, fmt.Errorf("%q: size %q is not a number", part, n)
		}
		pool[id] = size
	}
	return pool, nil
}

// env names the environment variable of each setting.
var env = map[string]string{
	"addr": "SDBX_ADDR", "data-dir": "SDBX_DATA_DIR", "api-key": "SDBX_API_KEY",
	"default-expiry": "SDBX_DEFAULT_EXPIRY", "log-level": "SDBX_LOG_LEVEL",
	"cpu": "SDBX_CPU", "memory-mb": "SDBX_MEMORY_MB", "pids": "SDBX_PIDS",
	"shutdown-timeout": "SDBX_SHUTDOWN_TIMEOUT", "pool": "SDBX_POOL",
	"max-cpu": "SDBX_MAX_CPU", "max-memory-mb": "SDBX_MAX_MEMORY_MB", "max-pids": "SDBX_MAX_PIDS",
	"rate-limit": "SDBX_RATE_LIMIT", "rate-burst": "SDBX_RATE_BURST", "debug-addr": "SDBX_DEBUG_ADDR",
	"registry-mirror": "SDBX_REGISTRY_MIRROR",
	"network-default": "SDBX_NETWORK_DEFAULT", "network-cidr": "SDBX_NETWORK_CIDR",
	"disk-mb": "SDBX_DISK_MB", "max-disk-mb": "SDBX_MAX_DISK_MB", "disk-pool-gb": "SDBX_DISK_POOL_GB",
	"max-sandboxes-per-key": "SDBX_MAX_SANDBOXES_PER_KEY", "max-executions-per-key": "SDBX_MAX_EXECUTIONS_PER_KEY",
}

// Load builds the configuration from args (flags), the environment and the
// config file named by --config / SDBX_CONFIG, and validates it.
func Load(args []string, stderr io.Writer) (Server, error) {
	cfg := Defaults()
	fs := flag.NewFlagSet("sdbx serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("SDBX_CONFIG"), "JSON config file (env SDBX_CONFIG)")
	var f Server
	fs.StringVar(&f.Addr, "addr", "", "listen address (env SDBX_ADDR, default :3000)")
	fs.StringVar(&f.DataDir, "data-dir", "", "state directory (env SDBX_DATA_DIR, default /var/lib/sdbx)")
	fs.StringVar(&f.APIKey, "api-key", "", "admin API key (env SDBX_API_KEY; prefer the environment)")
	fs.DurationVar(&f.DefaultExpiry, "default-expiry", 0, "lifetime of sandboxes created without expiryTime, 0 = never (env SDBX_DEFAULT_EXPIRY)")
	fs.StringVar(&f.LogLevel, "log-level", "", "debug|info|warn|error (env SDBX_LOG_LEVEL)")
	fs.Float64Var(&f.CPU, "cpu", 0, "CPUs per sandbox (env SDBX_CPU, default 1)")
	fs.Int64Var(&f.MemoryMB, "memory-mb", 0, "memory per sandbox in MiB (env SDBX_MEMORY_MB, default 1024)")
	fs.Float64Var(&f.MaxCPU, "max-cpu", 0, "most CPUs a sandbox may ask for (env SDBX_MAX_CPU, default 2)")
	fs.Int64Var(&f.MaxMemoryMB, "max-memory-mb", 0, "most memory in MiB a sandbox may ask for (env SDBX_MAX_MEMORY_MB, default 8192)")
	fs.Int64Var(&f.MaxPIDs, "max-pids", 0, "most processes a sandbox may ask for (env SDBX_MAX_PIDS, default 4096)")
	fs.Int64Var(&f.PIDs, "pids", 0, "processes per sandbox (env SDBX_PIDS, default 512)")
	fs.Int64Var(&f.DiskMB, "disk-mb", 0, "disk quota per sandbox in MiB (env SDBX_DISK_MB, default 2048)")
	fs.Int64Var(&f.MaxDiskMB, "max-disk-mb", 0, "most disk in MiB a sandbox may ask for (env SDBX_MAX_DISK_MB, default 16384)")
	fs.Int64Var(&f.DiskPoolGB, "disk-pool-gb", 0, "size in GiB of the sparse image holding sandbox files, used when it is made; 0 = auto (env SDBX_DISK_POOL_GB)")
	fs.IntVar(&f.MaxSandboxesPerKey, "max-sandboxes-per-key", 0, "sandboxes one API key may have at once, 0 = no cap; the admin key is exempt (env SDBX_MAX_SANDBOXES_PER_KEY, default 100)")
	fs.IntVar(&f.MaxExecutionsPerKey, "max-executions-per-key", 0, "code runs, commands and batches one API key may run at once, 0 = no cap; the admin key is exempt (env SDBX_MAX_EXECUTIONS_PER_KEY, default 32)")
	fs.StringVar(&f.DebugAddr, "debug-addr", "", "serve pprof profiles on this address, e.g. 127.0.0.1:6060 (env SDBX_DEBUG_ADDR)")
	fs.Float64Var(&f.RateLimit, "rate-limit", 0, "requests per second per API key, 0 = off (env SDBX_RATE_LIMIT)")
	fs.StringVar(&f.RegistryMirror, "registry-mirror", "", "registry for dockerImage references without one, host[:port] (env SDBX_REGISTRY_MIRROR, default Docker Hub)")
	fs.StringVar(&f.NetworkDefault, "network-default", "", "egress of sandboxes created without a network policy: internet|none (env SDBX_NETWORK_DEFAULT, default internet)")
	fs.StringVar(&f.NetworkCIDR, "network-cidr", "", "IPv4 pool of the sandboxes' /30 links (env SDBX_NETWORK_CIDR, default 10.213.0.0/16)")
	fs.IntVar(&f.RateBurst, "rate-burst", 0, "burst of requests per API key (env SDBX_RATE_BURST, default 100)")
	fs.DurationVar(&f.ShutdownTimeout, "shutdown-timeout", 0, "bound on graceful shutdown (env SDBX_SHUTDOWN_TIMEOUT, default 10s)")
	poolFlag := fs.String("pool", "", `warm pool per template, e.g. "python-3-11=2,nodejs-18=1" or "none" (env SDBX_POOL, default python-3-11=2)`)
	if err := fs.Parse(args); err != nil {
		return Server{}, err
	}
	if fs.NArg() > 0 {
		return Server{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *configPath != "" {
		if err := loadFile(*configPath, &cfg); err != nil {
			return Server{}, err
		}
	}
	if err := applyEnv(&cfg); err != nil {
		return Server{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	override := func(name string, apply func()) {
		if set[name] {
			apply()
		}
	}
	override("addr", func() { cfg.Addr = f.Addr })
	override("data-dir", func() { cfg.DataDir = f.DataDir })
	override("api-key", func() { cfg.APIKey = f.APIKey })
	override("default-expiry", func() { cfg.DefaultExpiry = f.DefaultExpiry })
	override("log-level", func() { cfg.LogLevel = f.LogLevel })
	override("cpu", func() { cfg.CPU = f.CPU })
	override("memory-mb", func() { cfg.MemoryMB = f.MemoryMB })
	override("pids", func() { cfg.PIDs = f.PIDs })
	override("max-cpu", func() { cfg.MaxCPU = f.MaxCPU })
	override("max-memory-mb", func() { cfg.MaxMemoryMB = f.MaxMemoryMB })
	override("max-pids", func() { cfg.MaxPIDs = f.MaxPIDs })
	override("disk-mb", func() { cfg.DiskMB = f.DiskMB })
	override("max-disk-mb", func() { cfg.MaxDiskMB = f.MaxDiskMB })
	override("disk-pool-gb", func() { cfg.DiskPoolGB = f.DiskPoolGB })
	override("max-sandboxes-per-key", func() { cfg.MaxSandboxesPerKey = f.MaxSandboxesPerKey })
	override("max-executions-per-key", func() { cfg.MaxExecutionsPerKey = f.MaxExecutionsPerKey })
	override("shutdown-timeout", func() { cfg.ShutdownTimeout = f.ShutdownTimeout })
	override("rate-limit", func() { cfg.RateLimit = f.RateLimit })
	override("debug-addr", func() { cfg.DebugAddr = f.DebugAddr })
	override("rate-burst", func() { cfg.RateBurst = f.RateBurst })
	override("registry-mirror", func() { cfg.RegistryMirror = f.RegistryMirror })
	override("network-default", func() { cfg.NetworkDefault = f.NetworkDefault })
	override("network-cidr", func() { cfg.NetworkCIDR = f.NetworkCIDR })
	if set["pool"] {
		p, err := ParsePool(*poolFlag)
		if err != nil {
			return Server{}, fmt.Errorf("pool %w", err)
		}
		cfg.Pool = p
	}
	if err := cfg.Validate(); err != nil {
		return Server{}, err
	}
	return cfg, nil
}

func loadFile(path string, cfg *Server) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var raw struct {
		Server
		DefaultExpiry   string `json:"defaultExpiry"`
		ShutdownTimeout string `json:"shutdownTimeout"`
	}
	raw.Server = *cfg
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	*cfg = raw.Server
	for name, s := range map[string]string{"defaultExpiry": raw.DefaultExpiry, "shutdownTimeout": raw.ShutdownTimeout} {
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, name, err)
		}
		if name == "defaultExpiry" {
			cfg.DefaultExpiry = d
		} else {
			cfg.ShutdownTimeout = d
		}
	}
	return nil
}

func applyEnv(cfg *Server) error {
	var errs []error
	str := func(name string, dst *string) {
		if v, ok := os.LookupEnv(env[name]); ok && v != "" {
			*dst = v
		}
	}
	parse := func(name string, apply func(string) error) {
		if v, ok := os.LookupEnv(env[name]); ok && v != "" {
			if err := apply(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env[name], v, err))
			}
		}
	}
	str("addr", &cfg.Addr)
	str("data-dir", &cfg.DataDir)
	str("api-key", &cfg.APIKey)
	str("log-level", &cfg.LogLevel)
	str("debug-addr", &cfg.DebugAddr)
	str("registry-mirror", &cfg.RegistryMirror)
	str("network-default", &cfg.NetworkDefault)
	str("network-cidr", &cfg.NetworkCIDR)
	parse("default-expiry", func(v string) (err error) { cfg.DefaultExpiry, err = time.ParseDuration(v); return })
	parse("shutdown-timeout", func(v string) (err error) { cfg.ShutdownTimeout, err = time.ParseDuration(v); return })
	parse("cpu", func(v string) (err error) { cfg.CPU, err = strconv.ParseFloat(v, 64); return })
	parse("memory-mb", func(v string) (err error) { cfg.MemoryMB, err = strconv.ParseInt(v, 10, 64); return })
	parse("pids", func(v string) (err error) { cfg.PIDs, err = strconv.ParseInt(v, 10, 64); return })
	parse("max-cpu", func(v string) (err error) { cfg.MaxCPU, err = strconv.ParseFloat(v, 64); return })
	parse("max-memory-mb", func(v string) (err error) { cfg.MaxMemoryMB, err = strconv.ParseInt(v, 10, 64); return })
	parse("max-pids", func(v string) (err error) { cfg.MaxPIDs, err = strconv.ParseInt(v, 10, 64); return })
	parse("disk-mb", func(v string) (err error) { cfg.DiskMB, err = strconv.ParseInt(v, 10, 64); return })
	parse("max-disk-mb", func(v string) (err error) { cfg.MaxDiskMB, err = strconv.ParseInt(v, 10, 64); return })
	parse("disk-pool-gb", func(v string) (err error) { cfg.DiskPoolGB, err = strconv.ParseInt(v, 10, 64); return })
	parse("max-sandboxes-per-key", func(v string) (err error) { cfg.MaxSandboxesPerKey, err = strconv.Atoi(v); return })
	parse("max-executions-per-key", func(v string) (err error) { cfg.MaxExecutionsPerKey, err = strconv.Atoi(v); return })
	parse("rate-limit", func(v string) (err error) { cfg.RateLimit, err = strconv.ParseFloat(v, 64); return })
	parse("rate-burst", func(v string) (err error) { cfg.RateBurst, err = strconv.Atoi(v); return })
	parse("pool", func(v string) (err error) { cfg.Pool, err = ParsePool(v); return })
	return errors.Join(errs...)
}

// Validate reports every invalid setting, naming each.
func (c Server) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: want host:port or :port", c.Addr))
	}
	if c.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			errs = append(errs, fmt.Errorf("debug-addr %q: want host:port", c.DebugAddr))
		}
	}
	if m := c.RegistryMirror; m != "" && (strings.ContainsAny(m, "/@ \t") || strings.HasPrefix(m, ":") || strings.HasSuffix(m, ":")) {
		errs = append(errs, fmt.Errorf("registry-mirror %q: want host[:port] (no scheme or path)", m))
	}
	if c.NetworkDefault != "internet" && c.NetworkDefault != "none" {
		errs = append(errs, fmt.Errorf("network-default %q: want internet or none", c.NetworkDefault))
	}
	if p, err := netip.ParsePrefix(c.NetworkCIDR); err != nil || !p.Addr().Is4() || p.Bits() > 29 {
		errs = append(errs, fmt.Errorf("network-cidr %q: want an IPv4 prefix of /29 or wider, like 10.213.0.0/16", c.NetworkCIDR))
	}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("data-dir %q: must be an absolute path", c.DataDir))
	}
	if c.DefaultExpiry < 0 {
		errs = append(errs, fmt.Errorf("default-expiry %s: must not be negative", c.DefaultExpiry))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.CPU <= 0 || c.CPU > 1024 {
		errs = append(errs, fmt.Errorf("cpu %g: must be in (0, 1024]", c.CPU))
	}
	if c.MemoryMB < 16 {
		errs = append(errs, fmt.Errorf("memory-mb %d: must be at least 16", c.MemoryMB))
	}
	if c.PIDs < 8 {
		errs = append(errs, fmt.Errorf("pids %d: must be at least 8", c.PIDs))
	}
	if c.DiskMB < 16 {
		errs = append(errs, fmt.Errorf("disk-mb %d: must be at least 16", c.DiskMB))
	}
	if c.MaxDiskMB < 0 || c.DiskPoolGB < 0 {
		errs = append(errs, fmt.Errorf("max-disk-mb and disk-pool-gb must not be negative"))
	}
	if c.MaxSandboxesPerKey < 0 || c.MaxExecutionsPerKey < 0 {
		errs = append(errs, fmt.Errorf("max-sandboxes-per-key and max-executions-per-key must be 0 (no cap) or positive"))
	}
	for id, n := range c.Pool {
		if n < 0 || n > maxPool {
			errs = append(errs, fmt.Errorf("pool %s=%d: size must be between 0 and %d", id, n, maxPool))
		}
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		errs = append(errs, fmt.Errorf("rate-limit %g: must be 0 (off) or a positive number of requests per second", c.RateLimit))
	}
	if c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("rate-burst %d: must be at least 1", c.RateBurst))
	}
	if c.MaxCPU < 0 || c.MaxMemoryMB < 0 || c.MaxPIDs < 0 {
		errs = append(errs, fmt.Errorf("max-cpu, max-memory-mb and max-pids must not be negative"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown-timeout %s: must be positive", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
