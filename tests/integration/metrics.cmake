# /metrics with curl against `kvstore serve` (metrics_curl.sh): counters move as requests
# arrive. Included from tests/integration/CMakeLists.txt; the script exits 77 (skipped) when
# curl or etcdctl is missing.
if(NOT RELIST_BASH)
  find_program(RELIST_BASH bash)
endif()
if(TARGET kvstore AND RELIST_BASH)
  add_test(NAME metrics_curl
           COMMAND ${RELIST_BASH} ${CMAKE_CURRENT_LIST_DIR}/metrics_curl.sh $<TARGET_FILE:kvstore>)
  set_tests_properties(metrics_curl PROPERTIES
    TIMEOUT 60
    SKIP_RETURN_CODE 77
    LABELS integration
    ENVIRONMENT "RELIST_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp")
endif()
