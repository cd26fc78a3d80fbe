# The soak test (soak.sh), included from tests/integration/CMakeLists.txt: 1,000 namespaced
# watchers and a mixed create/update/delete load (soak_load, a small C driver on the project's
# gRPC client) against the real `kvstore serve`; zero divergence, zero lost or duplicated
# events, bounded server and watcher RSS. ctest runs the 60 s version (soak_60s); the long run
# is manual: SOAK_SECONDS=600 bash tests/integration/soak.sh KVSTORE WATCHER SOAK_LOAD.
add_executable(soak_load ${CMAKE_CURRENT_LIST_DIR}/soak_load.c)
target_link_libraries(soak_load relist_grpc relist_pb)

if(NOT RELIST_BASH)
  find_program(RELIST_BASH bash)
endif()
if(TARGET kvstore AND TARGET watcher AND RELIST_BASH)
  add_test(NAME soak_60s
           COMMAND ${RELIST_BASH} ${CMAKE_CURRENT_LIST_DIR}/soak.sh $<TARGET_FILE:kvstore>
                   $<TARGET_FILE:watcher> $<TARGET_FILE:soak_load>)
  set_tests_properties(soak_60s PROPERTIES
    TIMEOUT 180
    SKIP_RETURN_CODE 77
    LABELS integration
    ENVIRONMENT "SOAK_SECONDS=60;RELIST_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp")
endif()
