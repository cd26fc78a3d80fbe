# The scenario runner end to end (scenario_runs.sh), included from
# tests/integration/CMakeLists.txt: short variants of the shipped scripts through the real
# `scenario` binary against an embedded kvstore (skipped, exit 77, while kvstore has no Watch)
# and one against a real etcd 3.4 via --endpoints; plus the CLI's exit statuses and SIGINT.
if(NOT RELIST_BASH)
  find_program(RELIST_BASH bash)
endif()
if(TARGET scenario AND TARGET kvstore AND RELIST_BASH)
  set(scn_it ${CMAKE_CURRENT_LIST_DIR}/scenario_runs.sh)
  set(scn_it_tests)
  foreach(case relist-storm name-collision restart-herd compaction-410 calm-storm-recovery
               backoff-vs-none network-blip etcd cli)
    add_test(NAME scenario_${case}
             COMMAND ${RELIST_BASH} ${scn_it} ${case} $<TARGET_FILE:scenario> $<TARGET_FILE:kvstore>)
    list(APPEND scn_it_tests scenario_${case})
  endforeach()
  set_tests_properties(${scn_it_tests} PROPERTIES
    TIMEOUT 300
    SKIP_RETURN_CODE 77
    LABELS "integration;scenario"
    ENVIRONMENT "RELIST_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp")
endif()
