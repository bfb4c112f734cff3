package ruleset

// nf_tables netlink numbers (include/uapi/linux/netfilter/nf_tables.h),
// spelled out here because golang.org/x/sys/unix lacks many of them.

const subsysNFTables = 10 // NFNL_SUBSYS_NFTABLES

// Message types (NFT_MSG_*).
const (
	msgNewTable   = 0
	msgGetTable   = 1
	msgNewChain   = 3
	msgGetChain   = 4
	msgNewRule    = 6
	msgGetRule    = 7
	msgNewSet     = 9
	msgGetSet     = 10
	msgNewSetElem = 12
	msgGetSetElem = 13
	msgNewGen     = 15
	msgGetGen     = 16
	msgNewObj     = 18
	msgGetObj     = 19
)

// msgType is the netlink message type of an nf_tables message.
func msgType(m uint16) uint16 { return subsysNFTables<<8 | m }

const (
	tableName   = 1
	tableFlags  = 2
	tableHandle = 4

	chainTable    = 1
	chainHandle   = 2
	chainName     = 3
	chainHook     = 4
	chainPolicy   = 5
	chainType     = 7
	chainCounters = 8

	hookNum      = 1
	hookPriority = 2
	hookDev      = 3
	hookDevs     = 4

	counterBytes   = 1
	counterPackets = 2

	ruleTable       = 1
	ruleChain       = 2
	ruleHandle      = 3
	ruleExpressions = 4
	ruleUserdata    = 7

	listElem = 1

	exprName = 1
	exprData = 2

	immediateDreg = 1
	immediateData = 2

	dataValue   = 1
	dataVerdict = 2

	verdictCode  = 1
	verdictChain = 2

	setTable    = 1
	setName     = 2
	setFlags    = 3
	setKeyType  = 4
	setDataType = 6

	setElemListTable    = 1
	setElemListSet      = 2
	setElemListElements = 3

	setElemKey  = 1
	setElemData = 2

	objTable = 1
	objName  = 2
	objType  = 3
	objData  = 4

	genID = 1

	logGroup  = 1
	logPrefix = 2

	limitRate  = 1
	limitUnit  = 2
	limitBurst = 3
	limitType  = 4
	limitFlags = 5

	lookupSet  = 1
	lookupDreg = 3

	queueNum = 1

	xtName = 1
	xtRev  = 2
	xtInfo = 3

	objrefType      = 1
	objrefName      = 2
	objrefSetSreg   = 3
	objrefSetName   = 4
	dynsetExpr      = 7
	dynsetExprs     = 10
	objectCounter   = 1
	objectQuota     = 2
	objectLimit     = 4
	objectConnlim   = 5
	payloadSreg     = 5
	metaSreg        = 3
	ctSreg          = 4
	ctKey           = 2
	exthdrSreg      = 7
	ctKeyState      = 0
	bitwiseSreg     = 1
	bitwiseDreg     = 2
	bitwiseLen      = 3
	bitwiseMask     = 4
	bitwiseXor      = 5
	bitwiseOp       = 6
	cmpSreg         = 1
	cmpOp           = 2
	cmpData         = 3
	cmpOpEq         = 0
	cmpOpNeq        = 1
	setFlagAnon     = 0x1
	setFlagMap      = 0x8
	setFlagTimeout  = 0x10
	setFlagEval     = 0x20
	dataTypeVerdict = 0xffffff00
	limitFlagInv    = 1
	tableFlagOwner  = 0x2

	chainFlagBase = 0x1
)

// Verdict codes (NF_* and NFT_*).
const (
	codeDrop     = 0
	codeAccept   = 1
	codeStolen   = 2
	codeQueue    = 3
	codeContinue = -1
	codeBreak    = -2
	codeJump     = -3
	codeGoto     = -4
	codeReturn   = -5
)
