// Command markserver is the failover tests' service: a TCP server that
// answers every connection with its node and epoch, and appends a mark
// (node, epoch, time) to its node's log every 20 ms while it runs, so
// that a checker can prove no two nodes ever served at the same time.
//
//	markserver serve --port 7070 --dir /tmp/marks   (node and epoch from STEADY_NODE, STEADY_EPOCH)
//	markserver probe 198.18.0.12:7070               (prints the answer; exit 1 if none)
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: markserver serve --port P --dir D | markserver probe ADDR")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "probe":
		probe(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "markserver: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	port := fs.Int("port", 7070, "TCP port")
	dir := fs.String("dir", "", "directory of the mark logs")
	every := fs.Duration("every", 20*time.Millisecond, "mark interval")
	fs.Parse(args)
	node, epoch := os.Getenv("STEADY_NODE"), os.Getenv("STEADY_EPOCH")
	if node == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "markserver: STEADY_NODE and --dir are needed")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(*port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "markserver:", err)
		os.Exit(1)
	}
	f, err := os.OpenFile(filepath.Join(*dir, "marks-"+node+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "markserver:", err)
		os.Exit(1)
	}
	go func() {
		for {
			// One write per mark: lines never interleave.
			fmt.Fprintf(f, "%s %s %d\n", node, epoch, time.Now().UnixNano())
			time.Sleep(*every)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		fmt.Fprintf(c, "%s %s\n", node, epoch)
		c.Close()
	}
}

func probe(args []string) {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	timeout := fs.Duration("timeout", 300*time.Millisecond, "connect and read timeout")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: markserver probe ADDR:PORT")
		os.Exit(2)
	}
	c, err := net.DialTimeout("tcp", fs.Arg(0), *timeout)
	if err != nil {
		os.Exit(1)
	}
	c.SetDeadline(time.Now().Add(*timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		os.Exit(1)
	}
	fmt.Print(line)
}
