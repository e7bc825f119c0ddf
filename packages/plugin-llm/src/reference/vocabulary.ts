/**
 * The reference LLM's vocabulary: plain words, so generated text is readable in examples and tests.
 * Index 0 is the end-of-sequence token.
 */
export const EOS_TOKEN = 0;

export const VOCABULARY: readonly string[] = Object.freeze(
  (
    '<eos> the a an of to in on for with and or but not is are was were be been being this that these those ' +
    'it its we you they he she i me my our your their his her them us voice sound light river mountain city ' +
    'forest ocean music signal model stage pipeline token image picture colour color blue red green golden ' +
    'silver bright dark quiet loud soft warm cold fast slow early late morning evening night day sun moon star ' +
    'cloud rain wind snow storm fire stone glass paper story song poem dream memory garden window door road ' +
    'bridge tower harbor island valley meadow field sky horizon shadow echo whisper rhythm melody chord note ' +
    'speaks sings flows moves turns rises falls shines glows waits listens carries brings holds opens closes ' +
    'begins ends grows fades returns travels wanders gathers answers remembers imagines creates shapes paints ' +
    'writes reads hears sees feels knows finds keeps gives takes makes builds breaks joins follows leads ' +
    'gently slowly quickly softly brightly quietly always never often sometimes again together alone still ' +
    'over under between beyond across through around above below near far inside outside before after ' +
    'one two three four five many few every each some all more most less little much new old young ancient ' +
    'small large tall wide deep high long short clear calm wild gentle strong'
  ).split(/\s+/),
);
