import re,subprocess,sys,collections
rev=sys.argv[1]; base=sys.argv[2]
files=subprocess.run(['git','ls-tree','-r','--name-only',rev,base],capture_output=True,text=True).stdout.split()
bydir=collections.defaultdict(dict)
for f in files:
    if f.endswith('.go') and not f.endswith('_test.go'):
        bydir[f.rsplit('/',1)[0]][f]=subprocess.run(['git','show',f'{rev}:{f}'],capture_output=True,text=True).stdout
for d,srcs in sorted(bydir.items()):
    allsrc='\n'.join(srcs.values())
    m=re.search(r'\bName\s*=\s*"([^"]+)"',allsrc)
    name=m.group(1) if m else None
    for f,src in srcs.items():
        for dm in re.finditer(r'NewDesc\(\s*prometheus\.BuildFQName\(\s*types\.Namespace,\s*(Name|"[^"]*"),\s*("[^"]*"|Name)\s*\),\s*(?:(?:"(?:[^"\\]|\\.)*"|`[^`]*`)(?:\s*\+\s*(?:"(?:[^"\\]|\\.)*"|`[^`]*`))*|[^,]+),\s*(nil|\[\]string\{([^}]*)\}|[a-zA-Z_.]+)\s*,\s*(nil|prometheus\.Labels\{([^}]*)\})',src,re.S):
            sub=dm.group(1); sub=name if sub=='Name' else sub.strip('"')
            if dm.group(4) is not None: labels=[x.strip().strip('"') for x in dm.group(4).split(',') if x.strip()]
            elif dm.group(3)=='nil': labels=[]
            else: labels=['<'+dm.group(3)+'>']
            if dm.group(6): labels+= [x.split(':')[0].strip().strip('"') for x in dm.group(6).split(',') if ':' in x]
            second=dm.group(2); second=name if second=='Name' else second.strip('"')
            fam='windows_'+'_'.join(x for x in (sub,second) if x)
            print(f'{fam}\t{",".join(sorted(labels))}\t{f}')
