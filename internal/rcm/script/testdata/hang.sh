#!/bin/sh
# Hangs in preremove; ignores SIGABRT so that only the SIGKILL ends it,
# and leaves a child behind in its process group.
case "$1" in
scriptinfo) echo "rcm_script_version=1"; echo "rcm_script_func_info=hangs"; echo "rcm_cmd_timeout=1" ;;
register) echo "rcm_resource_name=net/eth9" ;;
queryremove) trap '' ABRT; sleep 300 & sleep 300 ;;
resourceinfo) echo "rcm_resource_usage_info=hanging" ;;
esac
