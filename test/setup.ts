// Runs before every test file: codec instances in the test processes compile the built module.
import { useNodeCodecModule } from "../agent/src/codec/node-codec-module.js";

useNodeCodecModule();
