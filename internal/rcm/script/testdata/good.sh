#!/bin/sh
# A well-behaved script: uses /dev/loop7 and SUNW_cpu, refuses a query
# unless forced, and reports what it saw of its environment.
case "$1" in
scriptinfo)
	echo "rcm_script_version=1"
	echo "rcm_script_func_info=test client for loop7"
	echo "rcm_cmd_timeout=10"
	;;
register)
	echo "rcm_resource_name=/dev/loop7"
	echo "rcm_resource_name=SUNW_cpu"
	echo "rcm_resource_name=SUNW_ip/192.0.2.7"
	;;
resourceinfo)
	echo "rcm_resource_usage_info=uid $(id -u) in $(pwd) for $2 env $(env | grep -v '^PWD=' | sort | tr '\n' ' ')"
	;;
queryremove)
	if [ "$RCM_ENV_FORCE" != TRUE ]; then
		echo "rcm_log_info=refusing $2"
		echo "rcm_failure_reason=the test database lives on $2"
		exit 3
	fi
	;;
preremove|postremove|undoremove)
	;;
querycapacity|precapacity|postcapacity)
	echo "rcm_log_debug=capacity $RCM_ENV_CAPACITY ids $RCM_ENV_CPU_IDS"
	;;
*)
	exit 2
	;;
esac
exit 0
