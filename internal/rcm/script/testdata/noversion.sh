#!/bin/sh
case "$1" in
scriptinfo) echo "rcm_script_func_info=forgot the version" ;;
esac
