#!/bin/sh
# Breaks the protocol in the way named by the resource it is asked about.
case "$1" in
scriptinfo) echo "rcm_script_version=1"; echo "rcm_script_func_info=misbehaving" ;;
register) echo "rcm_resource_name=net/eth9" ;;
queryremove)
	case "$2" in
	*noequals) echo "this is not a protocol line"; sleep 30 ;;
	*unknown) echo "rcm_surprise=1" ;;
	*empty) echo "rcm_failure_reason=" ;;
	*wrongcmd) echo "rcm_resource_name=net/eth8" ;;
	*noreason) exit 1 ;;
	*reasonok) echo "rcm_failure_reason=but I agree"; exit 0 ;;
	*) exit 0 ;;
	esac ;;
postremove) echo "rcm_failure_reason=cannot refuse a remove"; exit 3 ;;
resourceinfo) exit 0 ;;
esac
