package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/internal/agent"
	"github.com/steady-ha/steady/internal/config"
)

const defaultConfigPath = "/etc/steady/steady.yaml"

func newAgentCmd(g *globals) *cobra.Command {
	var (
		cfgPath, dataDir, logFormat, logLevel string
		dev, printDefault                     bool
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the steady agent, the daemon of this node",
		Long: `Run the steady agent, the per-node daemon. It keeps the event journal, runs the
embedded store, listens for kernel device events and serves the API on its
local socket. It runs in the foreground until SIGTERM or SIGINT, then shuts
down in order and exits 0.

The configuration file (--config, default ` + defaultConfigPath + `) is read
once, strictly: an unknown key or a bad value stops the agent with the file,
line and key named. A missing default file means the built-in defaults; print
them, commented, with --print-default-config.

--dev runs a single node with everything (data, store, socket) under
./.steady and needs no configuration file:

  steady agent --dev
  export STEADY_SOCKET=$PWD/.steady/steady.sock
  steady status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printDefault {
				_, err := io.WriteString(g.stdout, config.DefaultFile)
				return err
			}
			cfg, note, err := loadAgentConfig(cmd, cfgPath, dataDir, g.socket, dev)
			if err != nil {
				return err
			}
			if logFormat != "" {
				cfg.Log.Format = logFormat
			}
			if logLevel != "" {
				cfg.Log.Level = logLevel
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(g.stderr, cfg.Log)
			if note != "" {
				log.Info(note)
			}
			for first := true; ; first = false {
				a, err := agent.New(cmd.Context(), agent.Options{Config: cfg, Logger: log, Commands: commandNames(g.reg)})
				if err != nil {
					return err
				}
				if dev && first {
					fmt.Fprintf(g.stderr, "steady agent running in development mode; in another shell:\n  export STEADY_SOCKET=%s\n  steady status\n", cfg.API.Socket)
				}
				// Joining or creating a cluster rebuilds the agent in place:
				// same process, same supervised processes.
				if err := a.Run(cmd.Context()); !errors.Is(err, agent.ErrRestart) {
					return err
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", defaultConfigPath, "configuration file")
	f.StringVar(&dataDir, "data-dir", "", "node-local state directory (default /var/lib/steady, or ./.steady with --dev)")
	f.BoolVar(&dev, "dev", false, "development mode: one node, data and socket under ./.steady, no configuration file needed")
	f.BoolVar(&printDefault, "print-default-config", false, "print the default configuration, commented, and exit")
	f.StringVar(&logFormat, "log-format", "", "log format: text or json (default from the configuration: text)")
	f.StringVar(&logLevel, "log-level", "", "log level: debug, info, warn or error (default from the configuration: info)")
	return cmd
}

// loadAgentConfig reads the configuration and applies the flags. The
// note, when not empty, is logged once the logger exists.
func loadAgentConfig(cmd *cobra.Command, path, dataDir, socket string, dev bool) (config.Config, string, error) {
	explicit := cmd.Flags().Changed("config")
	cfg := config.Default()
	var note string
	if explicit || !dev {
		c, err := config.LoadFile(path)
		switch {
		case err == nil:
			cfg = c
		case !explicit && errors.Is(err, fs.ErrNotExist):
			note = fmt.Sprintf("no configuration file at %s; using the defaults", path)
		default:
			return cfg, "", err
		}
	}
	if dev {
		dir := dataDir
		if dir == "" {
			dir = ".steady"
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return cfg, "", err
		}
		cfg = cfg.Dev(abs)
	} else if dataDir != "" {
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return cfg, "", err
		}
		cfg.DataDir = abs
	}
	if socket != "" {
		abs, err := filepath.Abs(socket)
		if err != nil {
			return cfg, "", err
		}
		cfg.API.Socket = abs
	}
	return cfg, note, nil
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
