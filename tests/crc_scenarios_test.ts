// Runs every CRC scenario in tests/scenarios/ against real node processes.
import { runScenario, type Scenario } from "./scenarios/runner.ts";

const dir = new URL("./scenarios/", import.meta.url);
const files = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".json")).map((e) => e.name)
  .sort();

for (const file of files) {
  const scenario: Scenario = JSON.parse(Deno.readTextFileSync(new URL(file, dir)));
  Deno.test(`CRC scenario ${file}: ${scenario.name}`, () => runScenario(scenario));
}
