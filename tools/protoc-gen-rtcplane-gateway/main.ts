#!/usr/bin/env -S node --import tsx
import { runNodeJs } from "@bufbuild/protoplugin";
import { protocGenRtcplaneGateway } from "./plugin.js";

runNodeJs(protocGenRtcplaneGateway);
