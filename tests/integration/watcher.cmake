# The watcher CLI end to end (watcher_cli.sh), included from tests/integration/CMakeLists.txt.
# watcher_cli_etcd runs against a real etcd; watcher_cli_kvstore against our server once the
# kvstore binary exists (the script skips, exit 77, while that server has no Watch service).
if(NOT RELIST_BASH)
  find_program(RELIST_BASH bash)
endif()
if(TARGET watcher AND RELIST_BASH)
  set(watcher_it ${CMAKE_CURRENT_LIST_DIR}/watcher_cli.sh)
  add_test(NAME watcher_cli_etcd COMMAND ${RELIST_BASH} ${watcher_it} etcd $<TARGET_FILE:watcher>)
  set(watcher_it_tests watcher_cli_etcd)
  if(TARGET kvstore)
    add_test(NAME watcher_cli_kvstore
             COMMAND ${RELIST_BASH} ${watcher_it} kvstore:$<TARGET_FILE:kvstore> $<TARGET_FILE:watcher>)
    list(APPEND watcher_it_tests watcher_cli_kvstore)
  endif()
  set_tests_properties(${watcher_it_tests} PROPERTIES
    TIMEOUT 90
    SKIP_RETURN_CODE 77
    LABELS integration
    ENVIRONMENT "RELIST_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp")
endif()
