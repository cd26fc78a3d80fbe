# Reliability suites against the REAL `kvstore serve` binary as a child process (included from
# tests/integration/CMakeLists.txt): test_crash_kill (SIGKILL under a write load, restart,
# durability / revision / watch checks), test_hostile and test_hostile_conns (hostile clients, RSS
# bounds). All are ordinary cmocka executables from tests/unit (registered by tests/CMakeLists.txt);
# here they learn where kvstore is, are built after it, and link only the gRPC client and the
# generated messages (the server runs in another process; a half-written module elsewhere never
# blocks them). Without the kvstore target and without $RELIST_KVSTORE_BIN they skip.
if(TARGET kvstore)
  foreach(t test_crash_kill test_hostile test_hostile_conns)
    if(TARGET ${t})
      target_compile_definitions(${t} PRIVATE RELIST_KVSTORE_BIN="$<TARGET_FILE:kvstore>")
      add_dependencies(${t} kvstore)
      set_property(TARGET ${t} PROPERTY LINK_LIBRARIES relist_grpc relist_pb PkgConfig::CMOCKA)
    endif()
  endforeach()
endif()
