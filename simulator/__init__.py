"""The simulated cement plant: a pure plant model and the Modbus TCP / OPC UA servers that serve it.

Pure parts (no sockets): :mod:`simulator.tagmap` (the single register/node map),
:mod:`simulator.plant` (``PlantModel``), :mod:`simulator.scenarios`, :mod:`simulator.config_gen`.
The async shell: :mod:`simulator.runner` (``SimulatedPlant``) over :mod:`simulator.modbus_server`
and :mod:`simulator.opcua_server`; :mod:`simulator.cli` adds ``kilnwatch simulate``.
"""
