"""The offline router's vocabulary: general English and software words and patterns, no task sentences.

Word lists are grouped by what they signal (action clauses, code vs prose deliverables, ideation,
vagueness); ``COMMON`` holds frequent words that say nothing about which agent a task belongs to.
"""

from __future__ import annotations

import re


def words(*groups: str) -> frozenset[str]:
    return frozenset(w for g in groups for w in g.split())


WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
FILE = re.compile(
    r"\b[\w./-]*\w\.(?:py|ipynb|csv|tsv|json|jsonl|ya?ml|xml|toml|ini|txt|log|md|rst|html?|css|js|ts|c|h|cpp"
    r"|rs|go|java|rb|sh|sql|db|sqlite|xlsx?|parquet|png|jpe?g|gif|svg|pdf|zip|tar|gz)\b", re.I)
CODE_CHARS = re.compile(r"[=(){}\[\]<>]|\*\*|\+=|->|\bdef |\breturn\b|\bimport\b|\b\w+Error\b|\b\w+\(\)")
MATH = re.compile(r"\d\s*[-+*/^%]\s*\d|\d%|[$€£]\s?\d|\b\d{1,3}(?:,\d{3})+\b")
CLAUSE_SPLIT = re.compile(r"[,;:.!?]|\band then\b|\bthen\b|\band\b|\bplus\b|\bafter that\b")
WITH_LIST = re.compile(r"\b(?:with|including|containing|that has|featuring)\b(.*)")

# Verbs that start an action clause (code or prose); third-person -s forms are folded in.
ACTION = words(
    "write implement code build create develop design set add update migrate port refactor fix debug test",
    "run execute deploy publish package install configure schedule automate monitor integrate document",
    "download fetch scrape collect gather pull crawl load read import export save store write-up upload",
    "clean preprocess normalize normalise transform parse convert merge deduplicate filter extract split",
    "compute calculate estimate measure count analyse analyze process aggregate summarize summarise",
    "train tune fit evaluate validate verify benchmark profile optimize optimise compare simulate model",
    "forecast predict classify cluster rank plot chart visualise visualize draw produce generate render",
    "report present prepare explain describe review audit investigate survey research pick choose select",
    "find identify detect mask reproduce sort search query resize compress encode decode hash rename",
    "reverse solve check show print list email send notify translate draft outline define discuss")
FILLER = words("first then finally also next afterwards lastly and please after that we you i")
CODE_VERBS = words(
    "implement compute calculate plot parse debug refactor profile scrape unzip zip compress encode decode",
    "hash resize simulate execute run print sort merge convert count extract rename reverse solve fetch",
    "download load install benchmark optimize optimise vectorize serialize regex grep crop fix")
CODE_NOUNS = words(
    "function functions script scripts program code class method methods regex regular expression csv json",
    "yaml xml sql query file files folder directory array arrays list lists dict dictionary string strings",
    "integer integers int float loop bug error exception traceback test tests unittest api endpoint database",
    "db table plot chart histogram scatter image images pixels png hash checksum algorithm bash shell python",
    "javascript typescript numbers number matrix dataframe samples password prime equation decimal sum",
    "average median timestamps timestamp logs url urls command cli one-liner snippet variable bytes",
    "digits primes random dataset column columns rows row output input")
TEXT_VERBS = words(
    "explain describe summarize summarise compare discuss outline review draft translate define argue",
    "proofread rewrite paraphrase tell teach contrast elaborate critique reword edit polish introduce")
TEXT_NOUNS = words(
    "essay email letter abstract paragraph paragraphs article blog post summary overview biography poem",
    "haiku story notes readme documentation guide explanation difference differences trade-offs tradeoffs",
    "pros cons history literature introduction description faq tweet speech memo analogy arguments reader",
    "audience tone clarity language meaning concept concepts theory theorem principles advantages",
    "disadvantages sentence sentences wording announcement newsletter bio slogan caption")
QUANTITY = re.compile(
    r"\bhow (?:many|much|often|long|fast)\b|\b(?:total|number|count|sum|average|mean|median|percentage) of\b")
EXPLAIN = re.compile(
    r"\bwhat (?:does|do) .+ mean\b|\bmeaning of\b|\bin (?:plain|simple|layman'?s?) (?:words|terms|english)\b"
    r"|\bdifferences? between\b|\b(?:versus|vs)\b|\bpros and cons\b|\btrade-?offs\b"
    r"|\bfor (?:a|an) (?:beginner|non-technical|child|layperson|general)\b|\bthe (?:history|story|plot|origins?) of\b")
QUESTION = words("what why how who when which is are does do should can could would")
IDEA_STRONG = words("brainstorm brainstorming ideas idea pitch suggestions taglines slogans")
IDEA_MEDIUM = words(
    "propose suggest alternatives alternative options possibilities candidates candidate topics directions",
    "angles approaches strategies proposals concepts names titles themes hypotheses creative novel fresh")
QUANTIFIERS = words("several some few handful bunch couple various multiple many three four five six seven ten")
IDEA_WEAK = QUANTIFIERS | words("possible different rank critique weigh new list")
IMPERATIVE_CUE = words("you please and then to me could can")
IDEA_GEN = words("generate suggest propose list give pitch offer recommend")
IDEA_JUDGE = re.compile(  # asks to judge the generated items
    r"\b(?:critique|weigh|rank|score|judge|evaluate|compare)\b(?:\W+\w+){0,2}?\W+(?:each|them|all)\b"
    r"|\bwhich (?:is|one is) (?:best|strongest)\b")
DEFINITE = words("the main key central core big his her their its these those")
IDEA_PHRASES = re.compile(
    r"\b(?:come up with|think of|think up|what could (?:we|i)|how (?:could|might|can) (?:we|i)|"
    r"ways (?:to|we|of|for|that we)|any ideas)\b")
PLAN_MARKERS = re.compile(
    r"\b(?:pipeline|end[- ]to[- ]end|workflow|step by step|from scratch|first\b.*\bthen|and finally|"
    r"write(?:s)? up|(?:a|the) report|full[- ]stack|deploy(?:ed|ment)?|ci|continuous integration)\b")
BUILD = words("build create develop set design make implement write")
SYSTEM = words(
    "app application service website site system platform dashboard backend frontend api bot tool game server",
    "pipeline extension plugin add-on library sdk cli")
GENERIC = words(
    "a an the this that these those it its they them me my i we us our you your he she him her is are was",
    "were be been am do does did done doing have has had can could would should will shall may might must",
    "please just now again also so then there here what why how where when which who whom with about for",
    "on in at to of from by up out off over like as if not no yes ok okay hmm hi hello hey thanks thank",
    "sure maybe some any all more less very really too same other else before earlier previous previously",
    "last usual rest stuff thing things something anything everything whatever one help make fix look",
    "check handle improve update finish continue work works working go ahead get take care try start redo",
    "change deal see let know need want said say told talked discussed mentioned agreed better good nice",
    "right wrong broken stuck doesn't don't isn't won't can't didn't whether way quick quickly asap",
    "think best fine issue issues problem problems matter yesterday today tomorrow sort done finished")
OBJECT_START = words("up out in the a an our their its my your it them this these those all every each")
DEICTIC = words("it this that these those them thing stuff something same usual above before")
COMMON = GENERIC | words(
    "and or but nor yet so because although though while whereas unless until since than into onto upon via per",
    "about above across after against along among around away back behind below beside between beyond down during",
    "each either enough even ever every few first second third last next following former latter both several",
    "most much many more less least only own same such whole other another any some own part kind lot",
    "one two three four five six seven eight nine ten eleven twelve hundred thousand million half",
    "new old big small large long short high low full main great real simple simply usually often always never",
    "write create make get set put show give find run use uses used using way ways keep kept tell someone",
    "able also already still almost quite rather within without whose together toward towards under",
    "come comes came going got given gives shows found takes took means contain contains containing include",
    "includes including explain explains explained explaining describe describes need needs want wants",
    "design designs add adds remove removes example examples result results answer question option options",
    "choose pick offer suggest say possible")
"""Frequent words that say nothing about which agent a task belongs to (ignored when matching manifests)."""
WORK = words("file files folder folders directory directories run execute")
"""Words that ask for work on files or for running something: an agent without tools cannot do it."""
