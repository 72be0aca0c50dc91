package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrecedenceFlagsOverEnvOverFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sdbx.json")
	if err := os.WriteFile(file, []byte(`{"addr":"127.0.0.1:1000","dataDir":"/srv/file","logLevel":"warn","defaultExpiry":"2h","pids":100}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SDBX_CONFIG", file)
	t.Setenv("SDBX_DATA_DIR", "/srv/env")
	t.Setenv("SDBX_PIDS", "200")
	cfg, err := Load([]string{"--pids", "300"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:1000" || cfg.LogLevel != "warn" || cfg.DefaultExpiry != 2*time.Hour {
		t.Errorf("file values not applied: %+v", cfg)
	}
	if cfg.DataDir != "/srv/env" {
		t.Errorf("DataDir = %q, want env value /srv/env", cfg.DataDir)
	}
	if cfg.PIDs != 300 {
		t.Errorf("PIDs = %d, want flag value 300", cfg.PIDs)
	}
	if cfg.MemoryMB != 1024 {
		t.Errorf("MemoryMB = %d, want default 1024", cfg.MemoryMB)
	}
}

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := Load(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":3000" || cfg.DataDir != "/var/lib/sdbx" || cfg.Pool["python-3-11"] != 2 ||
		cfg.NetworkDefault != "internet" || cfg.NetworkCIDR != "10.213.0.0/16" {
		t.Fatalf("defaults = %+v", cfg)
	}
}

func TestInvalidSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad addr", []string{"--addr", "nonsense"}, nil, "addr"},
		{"relative data dir", []string{"--data-dir", "rel/dir"}, nil, "data-dir"},
		{"bad level", []string{"--log-level", "loud"}, nil, "log-level"},
		{"negative expiry", []string{"--default-expiry", "-1s"}, nil, "default-expiry"},
		{"bad env number", nil, map[string]string{"SDBX_MEMORY_MB": "lots"}, "SDBX_MEMORY_MB"},
		{"tiny memory", []string{"--memory-mb", "1"}, nil, "memory-mb"},
		{"negative rate", []string{"--rate-limit", "-1"}, nil, "rate-limit"},
		{"zero burst", nil, map[string]string{"SDBX_RATE_BURST": "0"}, "rate-burst"},
		{"bad pool", []string{"--pool", "python-3-11"}, nil, "TEMPLATE=SIZE"},
		{"bad pool size", nil, map[string]string{"SDBX_POOL": "a=x"}, "SDBX_POOL"},
		{"negative pool", []string{"--pool", "a=-1"}, nil, "pool a=-1"},
		{"bad egress default", []string{"--network-default", "allowlist"}, nil, "network-default"},
		{"bad egress default env", nil, map[string]string{"SDBX_NETWORK_DEFAULT": "open"}, "network-default"},
		{"bad cidr", []string{"--network-cidr", "10.0.0.0/30"}, nil, "network-cidr"},
		{"ipv6 cidr", nil, map[string]string{"SDBX_NETWORK_CIDR": "fd00::/64"}, "network-cidr"},
		{"tiny disk", []string{"--disk-mb", "1"}, nil, "disk-mb"},
		{"negative pool size", nil, map[string]string{"SDBX_DISK_POOL_GB": "-1"}, "disk-pool-gb"},
		{"negative sandbox cap", []string{"--max-sandboxes-per-key", "-1"}, nil, "max-sandboxes-per-key"},
		{"bad execution cap", nil, map[string]string{"SDBX_MAX_EXECUTIONS_PER_KEY": "many"}, "SDBX_MAX_EXECUTIONS_PER_KEY"},
		{"extra argument", []string{"extra"}, nil, "unexpected argument"},
		{"unknown file field", nil, map[string]string{"SDBX_CONFIG": "unknown"}, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				if k == "SDBX_CONFIG" {
					f := filepath.Join(t.TempDir(), "c.json")
					os.WriteFile(f, []byte(`{"bogus":1}`), 0o600)
					v = f
				}
				t.Setenv(k, v)
			}
			_, err := Load(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%v) error = %v, want mention of %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestPoolFlag(t *testing.T) {
	cfg, err := Load([]string{"--pool", "python-3-11=3, nodejs-18=1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Pool) != 2 || cfg.Pool["python-3-11"] != 3 || cfg.Pool["nodejs-18"] != 1 {
		t.Fatalf("pool = %v", cfg.Pool)
	}
	cfg, err = Load([]string{"--pool", "none"}, io.Discard)
	if err != nil || len(cfg.Pool) != 0 {
		t.Fatalf("--pool none = %v, %v", cfg.Pool, err)
	}
}

func TestDiskAndCapSettings(t *testing.T) {
	cfg, err := Load(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DiskMB != 2048 || cfg.MaxDiskMB != 16384 || cfg.DiskPoolGB != 0 || cfg.MaxSandboxesPerKey != 100 || cfg.MaxExecutionsPerKey != 32 {
		t.Fatalf("defaults = %+v", cfg)
	}
	t.Setenv("SDBX_MAX_SANDBOXES_PER_KEY", "7")
	t.Setenv("SDBX_DISK_MB", "512")
	cfg, err = Load([]string{"--max-executions-per-key", "0", "--disk-pool-gb", "20", "--max-disk-mb", "1024"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxSandboxesPerKey != 7 || cfg.MaxExecutionsPerKey != 0 || cfg.DiskMB != 512 || cfg.DiskPoolGB != 20 || cfg.MaxDiskMB != 1024 {
		t.Fatalf("loaded = %+v", cfg)
	}
}
